/**
 * Credential values: what an operator may hand in for each type, how it is
 * encoded before sealing (api_key: the key; basic: "user:password"; oauth2:
 * a JSON object) and the seal context that binds it to its row.
 */
import * as v from "valibot";
import type { CredentialKey, CredentialRecord, CredentialType } from "../store/index.ts";
import type { SealContext, SealedSecret, Vault } from "./vault.ts";

export type CredentialSecret =
  | { type: "api_key"; key: string }
  | { type: "basic"; user: string; password: string }
  | {
      type: "oauth2";
      accessToken: string;
      refreshToken?: string;
      /** Milliseconds since the epoch. */
      expiresAt?: number;
      tokenUrl?: string;
      clientId?: string;
      clientSecret?: string;
    };

/** A credential value of the wrong shape; the message never contains the value. */
export class InvalidSecretError extends Error {
  override name = "InvalidSecretError";
}

const MAX_SECRET_LENGTH = 16 * 1024;

// Values end up in HTTP headers and environment variables: no control characters (CR/LF would split headers).
const hasNoControlCharacters = (text: string) => !/[\u0000-\u001f\u007f]/.test(text);

const secretText = (what: string, options: { allowEmpty?: boolean } = {}) =>
  v.pipe(
    v.string(`${what} must be a string`),
    v.minLength(options.allowEmpty ? 0 : 1, `${what} must not be empty`),
    v.maxLength(MAX_SECRET_LENGTH, `${what} is longer than ${MAX_SECRET_LENGTH} characters`),
    v.check(hasNoControlCharacters, `${what} must not contain newlines or other control characters`),
  );

const isLoopback = (host: string) => host === "localhost" || host === "127.0.0.1" || host === "[::1]";

const OAUTH2_FIELDS = ["accessToken", "refreshToken", "expiresAt", "tokenUrl", "clientId", "clientSecret"];

const OAuth2Secret = v.pipe(
  v.strictObject(
    {
      accessToken: secretText("accessToken"),
      refreshToken: v.optional(secretText("refreshToken")),
      expiresAt: v.optional(
        v.union(
          [
            v.pipe(v.number(), v.integer(), v.minValue(0)),
            v.pipe(v.string(), v.transform((text: string) => Date.parse(text)), v.number()),
          ],
          "expiresAt must be milliseconds since the epoch or an ISO 8601 time such as 2030-01-01T00:00:00Z",
        ),
      ),
      tokenUrl: v.optional(
        v.pipe(
          v.string("tokenUrl must be a string"),
          v.url("tokenUrl must be a URL"),
          v.check((text) => {
            const url = new URL(text);
            return url.protocol === "https:" || (url.protocol === "http:" && isLoopback(url.hostname));
          }, "tokenUrl must be an https URL (http only for localhost)"),
        ),
      ),
      clientId: v.optional(secretText("clientId")),
      clientSecret: v.optional(secretText("clientSecret")),
    },
    (issue) =>
      issue.path === undefined
        ? 'expected a JSON object such as {"accessToken": "…"}'
        : issue.expected === "never"
          ? `unknown field ${JSON.stringify(String(issue.path?.at(-1)?.key))}; the fields are ${OAUTH2_FIELDS.join(", ")}`
          : `${issue.expected.replaceAll('"', "")} is required`,
  ),
  v.check((secret) => secret.refreshToken === undefined || secret.tokenUrl !== undefined, "refreshToken needs tokenUrl, where it is exchanged for a new access token"),
);

function parsed<T>(schema: v.GenericSchema<unknown, T>, input: unknown, type: CredentialType): T {
  const result = v.safeParse(schema, input);
  if (!result.success) {
    // A misspelt field ("access_token") explains a missing one ("accessToken") better than the other way round.
    const issue = result.issues.find((candidate) => candidate.expected === "never") ?? result.issues[0];
    throw new InvalidSecretError(`invalid ${type} credential: ${issue.message}`);
  }
  return result.output;
}

/**
 * Reads a credential value as handed in by an operator (and as stored):
 * api_key the key itself, basic `user:password`, oauth2 a JSON object with at
 * least accessToken.
 */
export function parseCredentialSecret(type: CredentialType, text: string): CredentialSecret {
  switch (type) {
    case "api_key":
      return { type, key: parsed(secretText("the key"), text, type) };
    case "basic": {
      const colon = text.indexOf(":");
      if (colon < 0) throw new InvalidSecretError("invalid basic credential: expected user:password");
      return {
        type,
        user: parsed(secretText("the user"), text.slice(0, colon), type),
        password: parsed(secretText("the password", { allowEmpty: true }), text.slice(colon + 1), type),
      };
    }
    case "oauth2": {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        // JSON.parse's own message quotes the input: never show it.
        throw new InvalidSecretError('invalid oauth2 credential: not valid JSON; expected an object such as {"accessToken": "…"}');
      }
      // Arrays pass valibot's object check; reject them here with the same message.
      return { type, ...parsed(OAuth2Secret, Array.isArray(json) ? null : json, type) };
    }
  }
}

function encode(secret: CredentialSecret): string {
  switch (secret.type) {
    case "api_key":
      return secret.key;
    case "basic":
      return `${secret.user}:${secret.password}`;
    case "oauth2": {
      const { type: _type, ...fields } = secret;
      return JSON.stringify(fields);
    }
  }
}

/** The context a credential row is sealed under: its server, id and tenant. */
export function credentialContext(key: CredentialKey): SealContext {
  return { purpose: "credential", id: `${key.serverName}/${key.credentialId}`, tenantId: key.tenantId };
}

/** The client secret of a vendor's OAuth app. */
export function oauthAppContext(vendor: string): SealContext {
  return { purpose: "oauth-app", id: vendor, tenantId: "" };
}

/** A tenant's tokens for a vendor. */
export function oauthConnectionContext(vendor: string, tenantId: string): SealContext {
  return { purpose: "oauth-connection", id: vendor, tenantId };
}

/** A connect flow's PKCE verifier and nonce, keyed by its state's hash. */
export function oauthFlowContext(stateHash: string, tenantId: string): SealContext {
  return { purpose: "oauth-flow", id: stateHash, tenantId };
}

/** The context of a gateway-owned secret in sealed_blobs. */
export function blobContext(name: string): SealContext {
  return { purpose: "blob", id: name, tenantId: "" };
}

export function sealCredential(vault: Vault, key: CredentialKey, secret: CredentialSecret): SealedSecret {
  const plaintext = new TextEncoder().encode(encode(secret));
  try {
    return vault.seal(plaintext, credentialContext(key));
  } finally {
    plaintext.fill(0);
  }
}

/** Opens a stored credential; VaultError when it cannot be authenticated. */
export function openCredential(vault: Vault, record: CredentialRecord): CredentialSecret {
  const plaintext = vault.open(record.sealed, credentialContext(record));
  try {
    return parseCredentialSecret(record.type, new TextDecoder().decode(plaintext));
  } finally {
    plaintext.fill(0);
  }
}
