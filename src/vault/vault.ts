/**
 * Envelope encryption: every secret gets its own random data key (DEK); the
 * payload is sealed with the DEK and the DEK is wrapped with a master key.
 * Both layers are XChaCha20-Poly1305 (random 24-byte nonces are safe) and
 * both bind the secret's context as associated data, so a sealed row copied
 * to another tenant, credential or purpose no longer opens.
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import * as v from "valibot";
import { metrics } from "../metrics/index.ts";
import { KEY_ID_PATTERN, type Keyring } from "./keyring.ts";

/** Where a secret belongs; authenticated with it, never stored in it. */
export interface SealContext {
  /** What kind of secret: "credential", "blob", … */
  purpose: string;
  /** Which one, e.g. "<server>/<credentialId>". */
  id: string;
  /** The owning user's id; "" for secrets of the gateway itself. */
  tenantId: string;
}

/** A sealed secret as stored (JSON): binary fields are base64. */
export interface SealedSecret {
  version: 1;
  /** The master key that wraps the data key. */
  keyId: string;
  wrappedKey: string;
  keyNonce: string;
  nonce: string;
  ciphertext: string;
}

/** A secret that cannot be sealed or opened; the message names the record and key, never data. */
export class VaultError extends Error {
  override name = "VaultError";
}

export interface Vault {
  /** The key new secrets are wrapped with: the keyring's first. */
  readonly activeKeyId: string;
  /** Every key id of the keyring, active first. */
  readonly keyIds: readonly string[];
  seal(plaintext: Uint8Array, context: SealContext): SealedSecret;
  /** The plaintext, or a VaultError: never unauthenticated bytes. */
  open(sealed: SealedSecret, context: SealContext): Uint8Array;
  /** The same payload with its data key wrapped under the active key (for rotation). */
  rewrap(sealed: SealedSecret, context: SealContext): SealedSecret;
}

const FORMAT_VERSION = 1;
const KEY_BYTES = 32;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const base64Of = (bytes: number) =>
  v.pipe(v.string(), v.regex(BASE64), v.check((text) => Buffer.from(text, "base64").length === bytes));

/** Rows come back from the database as JSON: their shape is checked before any decryption. */
const SealedSecretSchema = v.strictObject({
  version: v.literal(FORMAT_VERSION),
  keyId: v.pipe(v.string(), v.regex(KEY_ID_PATTERN)),
  wrappedKey: base64Of(KEY_BYTES + TAG_BYTES),
  keyNonce: base64Of(NONCE_BYTES),
  nonce: base64Of(NONCE_BYTES),
  ciphertext: v.pipe(v.string(), v.regex(BASE64), v.check((text) => Buffer.from(text, "base64").length >= TAG_BYTES)),
});

const utf8 = new TextEncoder();

// JSON arrays encode the fields unambiguously ("a/b","c" differs from "a","b/c").
function payloadAad(context: SealContext): Uint8Array {
  return utf8.encode(JSON.stringify(["gigmcp-vault", FORMAT_VERSION, "payload", context.purpose, context.id, context.tenantId]));
}

function wrapAad(keyId: string, context: SealContext): Uint8Array {
  return utf8.encode(JSON.stringify(["gigmcp-vault", FORMAT_VERSION, "wrap", keyId, context.purpose, context.id, context.tenantId]));
}

function randomBytes(length: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(length));
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}

function fromBase64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "base64"));
}

function describe(context: SealContext): string {
  return `${context.purpose} ${context.id}`;
}

export function createVault(keyring: Keyring): Vault {
  const keys = new Map(keyring.keys.map((entry) => [entry.id, Uint8Array.from(entry.key)]));
  const active = keyring.keys[0];
  if (!active) throw new VaultError("the master keyring is empty: set GIG_MASTER_KEY or GIG_MASTER_KEY_FILE");
  const keyIds = keyring.keys.map((entry) => entry.id);

  const wrap = (dek: Uint8Array, context: SealContext) => {
    const keyNonce = randomBytes(NONCE_BYTES);
    const wrapped = xchacha20poly1305(keys.get(active.id)!, keyNonce, wrapAad(active.id, context)).encrypt(dek);
    return { keyId: active.id, wrappedKey: toBase64(wrapped), keyNonce: toBase64(keyNonce) };
  };

  const unwrap = (sealed: SealedSecret, context: SealContext): Uint8Array => {
    if (!v.is(SealedSecretSchema, sealed)) {
      throw new VaultError(`${describe(context)} is not a valid sealed record (format version ${FORMAT_VERSION}); set it again`);
    }
    const master = keys.get(sealed.keyId);
    if (!master) {
      throw new VaultError(
        `${describe(context)} is sealed under master key "${sealed.keyId}", which is not in the keyring (${keyIds.join(", ")}): ` +
          "add that key back to GIG_MASTER_KEY or GIG_MASTER_KEY_FILE",
      );
    }
    try {
      return xchacha20poly1305(master, fromBase64(sealed.keyNonce), wrapAad(sealed.keyId, context)).decrypt(fromBase64(sealed.wrappedKey));
    } catch {
      throw new VaultError(
        `master key "${sealed.keyId}" does not open ${describe(context)}: the key with that id has changed, ` +
          "or the record was altered or copied from another tenant, credential or purpose",
      );
    }
  };

  return {
    activeKeyId: active.id,
    keyIds,
    seal: counted("seal", (plaintext, context) => {
      const dek = randomBytes(KEY_BYTES);
      try {
        const nonce = randomBytes(NONCE_BYTES);
        const ciphertext = xchacha20poly1305(dek, nonce, payloadAad(context)).encrypt(plaintext);
        return { version: FORMAT_VERSION, ...wrap(dek, context), nonce: toBase64(nonce), ciphertext: toBase64(ciphertext) };
      } finally {
        dek.fill(0);
      }
    }),
    open: counted("open", (sealed, context) => {
      const dek = unwrap(sealed, context);
      try {
        return xchacha20poly1305(dek, fromBase64(sealed.nonce), payloadAad(context)).decrypt(fromBase64(sealed.ciphertext));
      } catch {
        throw new VaultError(`${describe(context)} failed authentication: its ciphertext was altered or copied from another record`);
      } finally {
        dek.fill(0);
      }
    }),
    rewrap: counted("rewrap", (sealed, context) => {
      const dek = unwrap(sealed, context);
      try {
        return { ...sealed, ...wrap(dek, context) };
      } finally {
        dek.fill(0);
      }
    }),
  };
}

/** Counts each call of a vault operation by outcome for /metrics. */
function counted<A extends unknown[], R>(op: "seal" | "open" | "rewrap", operation: (...args: A) => R): (...args: A) => R {
  return (...args) => {
    try {
      const result = operation(...args);
      metrics.vaultOperations.inc({ op, outcome: "ok" });
      return result;
    } catch (error) {
      metrics.vaultOperations.inc({ op, outcome: "error" });
      throw error;
    }
  };
}
