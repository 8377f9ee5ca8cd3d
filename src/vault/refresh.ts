/**
 * OAuth 2 refresh (RFC 6749 §6): the gateway, never a sandbox, trades the
 * refresh token for a new access token shortly before the old one expires.
 */
import * as v from "valibot";
import type { CredentialSecret } from "./credentials.ts";

type OAuthSecret = Extract<CredentialSecret, { type: "oauth2" }>;

const TokenResponse = v.object({
  access_token: v.pipe(v.string(), v.minLength(1)),
  token_type: v.optional(v.string()),
  expires_in: v.optional(v.pipe(v.number(), v.minValue(0))),
  refresh_token: v.optional(v.pipe(v.string(), v.minLength(1))),
});

const REFRESH_TIMEOUT_MS = 15_000;

/** A fresh access token (and the rotated refresh token, if the server sent one). Errors never carry token values. */
export async function refreshCredential(secret: OAuthSecret, fetchImpl: typeof fetch = fetch): Promise<OAuthSecret> {
  if (!secret.refreshToken || !secret.tokenUrl) {
    throw new Error("the OAuth access token has expired and cannot be refreshed: set the credential again with a refreshToken and tokenUrl");
  }
  const body = new URLSearchParams({ grant_type: "refresh_token", refresh_token: secret.refreshToken });
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
  if (secret.clientId && secret.clientSecret) {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(secret.clientId)}:${encodeURIComponent(secret.clientSecret)}`).toString("base64")}`;
  } else if (secret.clientId) {
    body.set("client_id", secret.clientId);
  }
  let response: Response;
  try {
    response = await fetchImpl(secret.tokenUrl, { method: "POST", headers, body, signal: AbortSignal.timeout(REFRESH_TIMEOUT_MS), redirect: "error" });
  } catch (error) {
    throw new Error(`OAuth refresh at ${new URL(secret.tokenUrl).origin} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = v.safeParse(TokenResponse, await response.json().catch(() => undefined));
  if (!response.ok || !parsed.success) {
    throw new Error(`OAuth refresh at ${new URL(secret.tokenUrl).origin} was refused (HTTP ${response.status}): set the credential again`);
  }
  const { access_token, expires_in, refresh_token } = parsed.output;
  return {
    ...secret,
    accessToken: access_token,
    refreshToken: refresh_token ?? secret.refreshToken,
    expiresAt: expires_in === undefined ? undefined : Date.now() + expires_in * 1000,
  };
}
