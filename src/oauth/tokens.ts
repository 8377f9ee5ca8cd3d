/**
 * OAuth 2 refresh (RFC 6749 §6) of a credential set per server: the gateway,
 * never a sandbox, trades the refresh token for a new access token shortly
 * before the old one expires.
 */
import type { CredentialSecret } from "../vault/index.ts";
import { tokenRequest } from "./protocol.ts";

type OAuthSecret = Extract<CredentialSecret, { type: "oauth2" }>;

/** A fresh access token (and the rotated refresh token, if the server sent one). Errors never carry token values. */
export async function refreshCredential(secret: OAuthSecret, fetchImpl: typeof fetch = fetch): Promise<OAuthSecret> {
  if (!secret.refreshToken || !secret.tokenUrl) {
    throw new Error("the OAuth access token has expired and cannot be refreshed: set the credential again with a refreshToken and tokenUrl");
  }
  const client = secret.clientId ? { clientId: secret.clientId, clientSecret: secret.clientSecret } : undefined;
  let tokens;
  try {
    tokens = await tokenRequest(secret.tokenUrl, client, { grant_type: "refresh_token", refresh_token: secret.refreshToken }, fetchImpl);
  } catch (error) {
    throw new Error(`${(error as Error).message}; set the credential again`);
  }
  return {
    ...secret,
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token ?? secret.refreshToken,
    expiresAt: tokens.expires_in === undefined ? undefined : Date.now() + tokens.expires_in * 1000,
  };
}
