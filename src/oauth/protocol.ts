/**
 * The OAuth 2 client's protocol pieces, shared by operator login (OIDC) and
 * per-tenant connections: PKCE (RFC 7636), random state and nonces, and
 * requests to token and revocation (RFC 7009) endpoints with client
 * authentication (RFC 6749 §2.3.1).
 */
import { timingSafeEqual } from "node:crypto";
import * as v from "valibot";

const TOKEN_REQUEST_TIMEOUT_MS = 15_000;

/** 32 random bytes, base64url: states, nonces and PKCE verifiers. */
export function randomToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}

/** The S256 challenge of a PKCE verifier. */
export async function codeChallenge(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return Buffer.from(digest).toString("base64url");
}

export function constantTimeEqual(actual: string, expected: string): boolean {
  const a = Buffer.from(actual);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** application/x-www-form-urlencoded, as RFC 6749 §2.3.1 wants client ids and secrets before base64. */
export function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, "+");
}

export interface OAuthClient {
  clientId: string;
  /** Unset for a public client (PKCE only). */
  clientSecret?: string;
}

/** HTTP Basic client authentication, or the client id in the body for a public client. */
export function authenticateClient(client: OAuthClient | undefined, headers: Record<string, string>, body: URLSearchParams): void {
  if (!client) return;
  if (client.clientSecret) {
    headers.authorization = `Basic ${Buffer.from(`${formEncode(client.clientId)}:${formEncode(client.clientSecret)}`).toString("base64")}`;
  } else {
    body.set("client_id", client.clientId);
  }
}

const TokenResponse = v.object({
  access_token: v.pipe(v.string(), v.minLength(1)),
  token_type: v.optional(v.string()),
  expires_in: v.optional(v.pipe(v.union([v.number(), v.pipe(v.string(), v.transform(Number))]), v.number(), v.minValue(0))),
  refresh_token: v.optional(v.pipe(v.string(), v.minLength(1))),
  scope: v.optional(v.string()),
  id_token: v.optional(v.string()),
});
export type TokenResponse = v.InferOutput<typeof TokenResponse>;

const ErrorResponse = v.object({ error: v.string(), error_description: v.optional(v.string()) });

/**
 * The token endpoint answered, and said no (`rejected`: an OAuth error such as
 * invalid_grant, so retrying will not help), or could not be used (network,
 * 5xx, malformed answer). The message never carries a token.
 */
export class TokenEndpointError extends Error {
  override name = "TokenEndpointError";
  constructor(
    message: string,
    readonly rejected: boolean,
  ) {
    super(message);
  }
}

/** POSTs a form to an OAuth endpoint with client authentication; `what` names the endpoint in errors. */
async function postForm(url: string, client: OAuthClient | undefined, form: Record<string, string>, what: string, fetchImpl: typeof fetch): Promise<Response> {
  const body = new URLSearchParams(form);
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
  authenticateClient(client, headers, body);
  try {
    return await fetchImpl(url, { method: "POST", headers, body, redirect: "error", signal: AbortSignal.timeout(TOKEN_REQUEST_TIMEOUT_MS) });
  } catch (error) {
    throw new TokenEndpointError(`the OAuth ${what} at ${new URL(url).origin} could not be reached: ${error instanceof Error ? error.message : String(error)}`, false);
  }
}

/** Why an endpoint said no, as a TokenEndpointError (`rejected` for a 4xx carrying an OAuth error). */
async function refusal(response: Response, what: string, origin: string): Promise<TokenEndpointError> {
  const json: unknown = await response.json().catch(() => undefined);
  const parsed = v.safeParse(ErrorResponse, json);
  // 4xx with an OAuth error is a definite no; anything else may pass.
  const rejected = parsed.success && response.status >= 400 && response.status < 500;
  const detail = parsed.success ? `${parsed.output.error}${parsed.output.error_description ? ` (${parsed.output.error_description.slice(0, 200)})` : ""}` : "no OAuth error in the answer";
  return new TokenEndpointError(`the OAuth ${what} at ${origin} was refused (HTTP ${response.status}): ${detail}`, rejected);
}

/** POSTs a grant to a token endpoint and returns the tokens it issued. */
export async function tokenRequest(
  tokenUrl: string,
  client: OAuthClient | undefined,
  grant: Record<string, string>,
  fetchImpl: typeof fetch = fetch,
): Promise<TokenResponse> {
  const origin = new URL(tokenUrl).origin;
  const response = await postForm(tokenUrl, client, grant, "token endpoint", fetchImpl);
  if (!response.ok) throw await refusal(response, "token request", origin);
  const json: unknown = await response.json().catch(() => undefined);
  const parsed = v.safeParse(TokenResponse, json);
  if (!parsed.success) throw new TokenEndpointError(`the OAuth token endpoint at ${origin} answered without an access token`, false);
  return parsed.output;
}

/**
 * Asks a vendor to revoke a token (RFC 7009), authenticated like a token
 * request. A 200 means the token is no longer valid, including one the vendor
 * had already forgotten (§2.2).
 */
export async function revokeToken(
  revokeUrl: string,
  client: OAuthClient | undefined,
  token: string,
  hint: "refresh_token" | "access_token",
  fetchImpl: typeof fetch = fetch,
): Promise<void> {
  const response = await postForm(revokeUrl, client, { token, token_type_hint: hint }, "revocation endpoint", fetchImpl);
  if (!response.ok) throw await refusal(response, "revocation request", new URL(revokeUrl).origin);
  await response.body?.cancel();
}
