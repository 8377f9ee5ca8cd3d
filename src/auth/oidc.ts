/**
 * OpenID Connect login (authorization code + PKCE S256) for the gateway's operators.
 *
 * The protocol steps are done here rather than through oidc-client-ts: that library
 * calls the global fetch (no injection, so no per-client TLS trust or test seams), keeps
 * login state in its own store instead of the caller-held PendingLogin, and does not
 * verify ID-token signatures. Signatures are checked with WebCrypto against the JWKS.
 */
import type { webcrypto } from "node:crypto";
import * as v from "valibot";
import { isLoopbackHost } from "../oci/index.ts";
import { codeChallenge, constantTimeEqual, formEncode, randomToken } from "../oauth/index.ts";

export interface OidcSettings {
  /** Exact issuer identifier; discovery must echo it byte for byte. */
  issuer: string;
  clientId: string;
  /** Confidential clients authenticate at the token endpoint; without it the client is public (PKCE only). */
  clientSecret?: string;
  redirectUri: string;
  /** Must include "openid". Default: openid email profile. */
  scopes?: string[];
  /** Lower-case domains matched exactly (no subdomains). Unset: any verified email. */
  allowedEmailDomains?: string[];
  adminGroups?: string[];
  /** ID-token claim holding the user's groups. Default: "groups". */
  groupsClaim?: string;
}

/** What the caller keeps between beginLogin and finishLogin (e.g. in a sealed, httpOnly, short-lived cookie). */
export interface PendingLogin {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** Milliseconds since the epoch, from the client's clock. */
  createdAt: number;
}

export interface OidcIdentity {
  subject: string;
  email: string;
  emailVerified: boolean;
  name?: string;
  groups: string[];
  role: "admin" | "member";
}

export interface OidcClient {
  /** Discovery (cached), then the authorization URL with state, nonce and PKCE S256. */
  beginLogin(): Promise<{ url: string; pending: PendingLogin }>;
  /** Validates the callback against the pending login, redeems the code and verifies the ID token. */
  finishLogin(callbackUrl: string, pending: PendingLogin): Promise<OidcIdentity>;
}

export type OidcErrorCode =
  | "discovery_failed"
  | "invalid_callback"
  | "state_mismatch"
  | "provider_error"
  | "token_invalid"
  | "email_unverified"
  | "email_not_allowed"
  | "expired_login";

export class OidcError extends Error {
  override name = "OidcError";
  constructor(readonly code: OidcErrorCode, message: string) {
    super(message);
  }
}

export const PENDING_LOGIN_MAX_AGE_MS = 10 * 60 * 1000;
/** Tolerated clock difference with the provider for exp/iat/nbf. */
const CLOCK_SKEW_SECONDS = 60;
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_RESPONSE_BYTES = 1024 * 1024;

const SettingsSchema = v.object({
  issuer: v.pipe(v.string(), v.url()),
  clientId: v.pipe(v.string(), v.minLength(1)),
  clientSecret: v.optional(v.pipe(v.string(), v.minLength(1))),
  redirectUri: v.pipe(v.string(), v.url()),
  scopes: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, "scopes must be single tokens without spaces or quotes"))),
      v.check((scopes) => scopes.includes("openid"), 'scopes must include "openid"'),
    ),
  ),
  allowedEmailDomains: v.optional(v.array(v.pipe(v.string(), v.minLength(1), v.toLowerCase()))),
  adminGroups: v.optional(v.array(v.string())),
  groupsClaim: v.optional(v.pipe(v.string(), v.minLength(1))),
});

const DiscoverySchema = v.object({
  issuer: v.string(),
  authorization_endpoint: v.pipe(v.string(), v.url()),
  token_endpoint: v.pipe(v.string(), v.url()),
  jwks_uri: v.pipe(v.string(), v.url()),
  code_challenge_methods_supported: v.optional(v.array(v.string())),
  token_endpoint_auth_methods_supported: v.optional(v.array(v.string())),
});
type Discovery = v.InferOutput<typeof DiscoverySchema>;

const TokenResponseSchema = v.object({ id_token: v.pipe(v.string(), v.minLength(1)) });
const TokenErrorSchema = v.object({ error: v.string(), error_description: v.optional(v.string()) });

const JwkSchema = v.looseObject({
  kty: v.string(),
  kid: v.optional(v.string()),
  use: v.optional(v.string()),
  alg: v.optional(v.string()),
});
type Jwk = v.InferOutput<typeof JwkSchema>;
const JwksSchema = v.object({ keys: v.array(v.unknown()) });

const JwtHeaderSchema = v.object({ alg: v.string(), kid: v.optional(v.string()), crit: v.optional(v.unknown()) });

const IdTokenClaimsSchema = v.looseObject({
  iss: v.string(),
  sub: v.pipe(v.string(), v.minLength(1)),
  aud: v.union([v.string(), v.array(v.string())]),
  exp: v.number(),
  iat: v.number(),
  nbf: v.optional(v.number()),
  nonce: v.optional(v.string()),
  azp: v.optional(v.string()),
  email: v.optional(v.string()),
  email_verified: v.optional(v.boolean()),
  name: v.optional(v.string()),
});

/** Signature algorithms accepted for ID tokens, with their WebCrypto parameters. "none" and HMAC are never accepted. */
const SIGNATURE_ALGORITHMS: Record<string, {
  kty: string;
  importParams: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams;
  verifyParams: webcrypto.AlgorithmIdentifier | webcrypto.RsaPssParams | webcrypto.EcdsaParams;
}> = {
  RS256: { kty: "RSA", importParams: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, verifyParams: "RSASSA-PKCS1-v1_5" },
  PS256: { kty: "RSA", importParams: { name: "RSA-PSS", hash: "SHA-256" }, verifyParams: { name: "RSA-PSS", saltLength: 32 } },
  ES256: { kty: "EC", importParams: { name: "ECDSA", namedCurve: "P-256" }, verifyParams: { name: "ECDSA", hash: "SHA-256" } },
  ES384: { kty: "EC", importParams: { name: "ECDSA", namedCurve: "P-384" }, verifyParams: { name: "ECDSA", hash: "SHA-384" } },
};

export function createOidcClient(
  settings: OidcSettings,
  options: { fetch?: typeof fetch; now?: () => number } = {},
): OidcClient {
  const parsedSettings = v.safeParse(SettingsSchema, settings);
  if (!parsedSettings.success) {
    throw new Error(`invalid OIDC settings: ${v.summarize(parsedSettings.issues)}`);
  }
  const config = parsedSettings.output;
  requireSecureUrl(config.issuer, "issuer");
  requireSecureUrl(config.redirectUri, "redirectUri");
  const scopes = config.scopes ?? ["openid", "email", "profile"];
  const groupsClaim = config.groupsClaim ?? "groups";
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;

  let discovery: Promise<Discovery> | undefined;
  let jwks: Promise<Jwk[]> | undefined;

  function discover(): Promise<Discovery> {
    // Cache success only, so a provider outage does not stick.
    discovery ??= fetchDiscovery().catch((error: unknown) => {
      discovery = undefined;
      throw error;
    });
    return discovery;
  }

  async function fetchDiscovery(): Promise<Discovery> {
    const url = `${config.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
    const document = await fetchJson(doFetch, url, { method: "GET" }, "discovery_failed");
    const parsed = v.safeParse(DiscoverySchema, document);
    if (!parsed.success) {
      throw new OidcError("discovery_failed", `discovery document at ${url} is malformed: ${v.summarize(parsed.issues)}`);
    }
    // Mix-up defense: the provider must claim exactly the configured issuer.
    if (parsed.output.issuer !== config.issuer) {
      throw new OidcError("discovery_failed", `discovery at ${url} names issuer "${parsed.output.issuer}", expected "${config.issuer}"; fix the configured issuer`);
    }
    for (const field of ["authorization_endpoint", "token_endpoint", "jwks_uri"] as const) {
      requireSecureUrl(parsed.output[field], field);
    }
    const methods = parsed.output.code_challenge_methods_supported;
    if (methods && !methods.includes("S256")) {
      throw new OidcError("discovery_failed", "the provider does not support PKCE S256; enable it at the provider");
    }
    return parsed.output;
  }

  async function signingKeys(forceRefresh: boolean): Promise<Jwk[]> {
    if (forceRefresh) jwks = undefined;
    jwks ??= (async () => {
      const { jwks_uri } = await discover();
      const parsed = v.safeParse(JwksSchema, await fetchJson(doFetch, jwks_uri, { method: "GET" }, "token_invalid"));
      if (!parsed.success) throw new OidcError("token_invalid", `JWKS at ${jwks_uri} is malformed`);
      // Skip keys we cannot parse rather than rejecting the whole set.
      return parsed.output.keys.flatMap((key) => {
        const jwk = v.safeParse(JwkSchema, key);
        return jwk.success && jwk.output.use !== "enc" ? [jwk.output] : [];
      });
    })().catch((error: unknown) => {
      jwks = undefined;
      throw error;
    });
    return jwks;
  }

  async function verifyIdToken(idToken: string, pending: PendingLogin): Promise<v.InferOutput<typeof IdTokenClaimsSchema>> {
    const parts = idToken.split(".");
    if (parts.length !== 3) throw new OidcError("token_invalid", "the ID token is not a signed JWT");
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
    const header = v.safeParse(JwtHeaderSchema, decodeJsonPart(headerPart));
    if (!header.success) throw new OidcError("token_invalid", "the ID token header is malformed");
    if (header.output.crit !== undefined) throw new OidcError("token_invalid", "the ID token uses critical header extensions, which are not supported");
    const algorithm = SIGNATURE_ALGORITHMS[header.output.alg];
    if (!algorithm) {
      throw new OidcError("token_invalid", `ID token algorithm ${header.output.alg} is not accepted; configure the client at the provider for one of ${Object.keys(SIGNATURE_ALGORITHMS).join(", ")}`);
    }

    const candidates = (keys: Jwk[]) =>
      keys.filter(
        (key) =>
          key.kty === algorithm.kty &&
          (key.alg === undefined || key.alg === header.output.alg) &&
          (header.output.kid === undefined || key.kid === header.output.kid),
      );
    let matching = candidates(await signingKeys(false));
    // The provider may have rotated its keys since we cached them: refetch once.
    if (matching.length === 0) matching = candidates(await signingKeys(true));
    if (matching.length !== 1) {
      throw new OidcError("token_invalid", matching.length === 0 ? "no provider key matches the ID token's key id" : "the ID token has no key id and the provider publishes several keys");
    }

    let valid = false;
    try {
      const key = await crypto.subtle.importKey("jwk", matching[0] as webcrypto.JsonWebKey, algorithm.importParams, false, ["verify"]);
      valid = await crypto.subtle.verify(algorithm.verifyParams, key, base64UrlDecode(signaturePart), new TextEncoder().encode(`${headerPart}.${payloadPart}`));
    } catch {
      valid = false;
    }
    if (!valid) throw new OidcError("token_invalid", "the ID token signature does not verify against the provider's keys");

    const parsed = v.safeParse(IdTokenClaimsSchema, decodeJsonPart(payloadPart));
    if (!parsed.success) throw new OidcError("token_invalid", `the ID token claims are malformed: ${v.summarize(parsed.issues)}`);
    const claims = parsed.output;
    if (claims.iss !== config.issuer) throw new OidcError("token_invalid", "the ID token was issued by another issuer");
    const audiences = typeof claims.aud === "string" ? [claims.aud] : claims.aud;
    if (!audiences.includes(config.clientId)) throw new OidcError("token_invalid", "the ID token is not meant for this client (aud)");
    if ((audiences.length > 1 || claims.azp !== undefined) && claims.azp !== config.clientId) {
      throw new OidcError("token_invalid", "the ID token's authorized party (azp) is not this client");
    }
    const nowSeconds = Math.floor(now() / 1000);
    if (claims.exp <= nowSeconds - CLOCK_SKEW_SECONDS) throw new OidcError("token_invalid", "the ID token has expired; check the gateway's clock if this repeats");
    if (claims.iat > nowSeconds + CLOCK_SKEW_SECONDS) throw new OidcError("token_invalid", "the ID token was issued in the future; check the gateway's clock");
    if (claims.nbf !== undefined && claims.nbf > nowSeconds + CLOCK_SKEW_SECONDS) throw new OidcError("token_invalid", "the ID token is not valid yet; check the gateway's clock");
    if (claims.nonce === undefined || !constantTimeEqual(claims.nonce, pending.nonce)) {
      throw new OidcError("token_invalid", "the ID token nonce does not match this login; start the login again");
    }
    return claims;
  }

  return {
    async beginLogin() {
      const { authorization_endpoint } = await discover();
      const pending: PendingLogin = {
        state: randomToken(),
        nonce: randomToken(),
        codeVerifier: randomToken(),
        createdAt: now(),
      };
      const url = new URL(authorization_endpoint);
      url.searchParams.set("response_type", "code");
      url.searchParams.set("client_id", config.clientId);
      url.searchParams.set("redirect_uri", config.redirectUri);
      url.searchParams.set("scope", scopes.join(" "));
      url.searchParams.set("state", pending.state);
      url.searchParams.set("nonce", pending.nonce);
      url.searchParams.set("code_challenge", await codeChallenge(pending.codeVerifier));
      url.searchParams.set("code_challenge_method", "S256");
      return { url: url.toString(), pending };
    },

    async finishLogin(callbackUrl, pending) {
      const age = now() - pending.createdAt;
      if (!(age >= -CLOCK_SKEW_SECONDS * 1000 && age <= PENDING_LOGIN_MAX_AGE_MS)) {
        throw new OidcError("expired_login", "the login took too long or was already used; start the login again");
      }
      let callback: URL;
      try {
        callback = new URL(callbackUrl);
      } catch {
        throw new OidcError("invalid_callback", "the callback URL is not a URL");
      }
      const expected = new URL(config.redirectUri);
      if (callback.origin !== expected.origin || callback.pathname !== expected.pathname) {
        throw new OidcError("invalid_callback", "the callback URL does not match the configured redirectUri");
      }
      const params = callback.searchParams;
      if (!constantTimeEqual(params.get("state") ?? "", pending.state)) {
        throw new OidcError("state_mismatch", "the login state does not match; start the login again from the same browser");
      }
      const discovered = await discover();
      // RFC 9207: when the provider names itself in the response, it must be ours.
      const responseIssuer = params.get("iss");
      if (responseIssuer !== null && responseIssuer !== config.issuer) {
        throw new OidcError("invalid_callback", "the authorization response came from another issuer");
      }
      const providerError = params.get("error");
      if (providerError !== null) {
        throw new OidcError("provider_error", `the provider refused the login: ${providerError}${describe(params.get("error_description"))}`);
      }
      const code = params.get("code");
      if (!code) throw new OidcError("invalid_callback", "the callback carries no authorization code");

      const body = new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: config.redirectUri,
        code_verifier: pending.codeVerifier,
      });
      const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
      const authMethods = discovered.token_endpoint_auth_methods_supported ?? ["client_secret_basic"];
      if (config.clientSecret === undefined) {
        body.set("client_id", config.clientId);
      } else if (authMethods.includes("client_secret_basic") || !authMethods.includes("client_secret_post")) {
        // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        const credentials = `${formEncode(config.clientId)}:${formEncode(config.clientSecret)}`;
        headers.authorization = `Basic ${Buffer.from(credentials).toString("base64")}`;
      } else {
        body.set("client_id", config.clientId);
        body.set("client_secret", config.clientSecret);
      }
      const tokenResponse = await fetchJson(doFetch, discovered.token_endpoint, { method: "POST", headers, body }, "provider_error");
      const tokens = v.safeParse(TokenResponseSchema, tokenResponse);
      if (!tokens.success) throw new OidcError("provider_error", "the token response carries no ID token; is the openid scope granted?");

      const claims = await verifyIdToken(tokens.output.id_token, pending);
      if (claims.email === undefined || claims.email_verified !== true) {
        throw new OidcError("email_unverified", "the provider did not return a verified email; verify the email address at the provider and grant the email scope");
      }
      const at = claims.email.lastIndexOf("@");
      const domain = claims.email.slice(at + 1).toLowerCase();
      if (at <= 0 || (config.allowedEmailDomains && !config.allowedEmailDomains.includes(domain))) {
        throw new OidcError("email_not_allowed", `email domain "${domain}" is not allowed to sign in; ask an administrator to add it to allowedEmailDomains`);
      }
      const groups = readGroups(claims[groupsClaim]);
      const isAdmin = groups.some((group) => config.adminGroups?.includes(group) ?? false);
      return {
        subject: claims.sub,
        email: claims.email,
        emailVerified: true,
        ...(claims.name !== undefined ? { name: claims.name } : {}),
        groups,
        role: isAdmin ? "admin" : "member",
      };
    },
  };
}

/** Plain http is only acceptable for a provider on this machine (tests, local dev). */
function requireSecureUrl(url: string, what: string): void {
  const parsed = new URL(url);
  if (parsed.protocol === "https:") return;
  if (parsed.protocol === "http:" && isLoopbackHost(parsed.hostname)) return;
  throw new OidcError("discovery_failed", `${what} ${url} must use https (plain http is allowed only on loopback)`);
}

async function fetchJson(doFetch: typeof fetch, url: string, init: RequestInit, code: OidcErrorCode): Promise<unknown> {
  let response: Response;
  try {
    response = await doFetch(url, { ...init, redirect: "error", signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (error) {
    throw new OidcError(code, `could not reach ${url}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const text = await response.text();
  if (text.length > MAX_RESPONSE_BYTES) throw new OidcError(code, `response from ${url} is too large`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new OidcError(code, `response from ${url} (HTTP ${response.status}) is not JSON`);
  }
  if (!response.ok) {
    const error = v.safeParse(TokenErrorSchema, json);
    const detail = error.success ? `${error.output.error}${describe(error.output.error_description)}` : "no error detail";
    throw new OidcError(code, `${url} answered HTTP ${response.status}: ${detail}`);
  }
  return json;
}

function describe(description: string | null | undefined): string {
  return description ? ` (${description.slice(0, 200)})` : "";
}

function readGroups(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.filter((group): group is string => typeof group === "string");
  return [];
}

function base64UrlDecode(part: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) throw new OidcError("token_invalid", "the ID token is not base64url-encoded");
  return new Uint8Array(Buffer.from(part, "base64url"));
}

function decodeJsonPart(part: string): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(base64UrlDecode(part)));
  } catch (error) {
    if (error instanceof OidcError) throw error;
    throw new OidcError("token_invalid", "the ID token is not valid JSON");
  }
}
