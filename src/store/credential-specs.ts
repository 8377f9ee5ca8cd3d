/**
 * What a server may declare about its credentials, checked wherever a server
 * is created (CLI flags today, an API later) and again by the store.
 */
import * as v from "valibot";
import { CREDENTIAL_ID_PATTERN, CREDENTIAL_TYPES, type CredentialSpec, type Tier } from "./types.ts";

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
// Headers that frame or route the request: a credential there would let it rewrite the request itself.
const RESERVED_HEADERS = new Set(["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive"]);
const TOKEN_SLOT = "{token}";
const FIELDS = ["id", "type", "header", "format", "env", "vendor", "scopes"];
/** Vendor slugs as the registry writes them (google, stack-exchange); they also name GIG_OAUTH_<VENDOR>_* settings. */
export const VENDOR_PATTERN = /^[a-z0-9]+(-[a-z0-9]+)*$/;
/** RFC 6749 §3.3 scope tokens. */
export const SCOPE_PATTERN = /^[\x21\x23-\x5b\x5d-\x7e]{1,256}$/;

export const CredentialSpecSchema = v.strictObject(
  {
    id: v.pipe(
      v.string(),
      v.regex(CREDENTIAL_ID_PATTERN, 'id must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit'),
    ),
    type: v.picklist(CREDENTIAL_TYPES, `type must be one of ${CREDENTIAL_TYPES.join(", ")}`),
    header: v.optional(
      v.pipe(
        v.string(),
        v.regex(HEADER_NAME, "header must be an HTTP header name such as Authorization"),
        v.check((name) => !RESERVED_HEADERS.has(name.toLowerCase()), (issue) => `header ${issue.input} is reserved: it frames the request, so a credential cannot go there`),
      ),
    ),
    format: v.optional(
      v.pipe(
        v.string(),
        v.check((format) => format.split(TOKEN_SLOT).length === 2, `format must contain ${TOKEN_SLOT} exactly once, e.g. "Bearer ${TOKEN_SLOT}"`),
        v.check((format) => !/[\u0000-\u001f\u007f]/.test(format), "format must not contain control characters"),
      ),
    ),
    env: v.optional(v.pipe(v.string(), v.regex(ENV_NAME, "env must be a variable name (letters, digits and _, not starting with a digit)"))),
    vendor: v.optional(v.pipe(v.string(), v.maxLength(64), v.regex(VENDOR_PATTERN, "vendor must be a lowercase slug such as google or stack-exchange"))),
    scopes: v.optional(v.array(v.pipe(v.string(), v.regex(SCOPE_PATTERN, "each scope must be one OAuth scope token (no spaces or quotes)")))),
  },
  (issue) =>
    issue.path === undefined
      ? "expected id=ID,type=TYPE[,header=NAME,format=FORMAT][,env=VAR][,vendor=VENDOR,scopes=SCOPE SCOPE…]"
      : issue.expected === "never"
        ? `unknown field ${JSON.stringify(String(issue.path?.at(-1)?.key))}; the fields are ${FIELDS.join(", ")}`
        : `${issue.expected.replaceAll('"', "")} is required`,
);

/** Parses one credential declaration; returns it or the first problem. */
export function parseCredentialSpec(input: unknown): { spec: CredentialSpec } | { problem: string } {
  const result = v.safeParse(CredentialSpecSchema, input);
  if (result.success) return { spec: result.output };
  // A misspelt field explains a missing one better than the other way round.
  return { problem: (result.issues.find((issue) => issue.expected === "never") ?? result.issues[0]).message };
}

/**
 * The first rule a server's credential list breaks, or undefined. Sealed
 * servers need header and format (the proxy injects there; env is optional
 * and receives a placeholder); entrusted servers need env (it receives the
 * secret itself) and take no header or format.
 */
export function credentialSpecProblem(tier: Tier, credentials: CredentialSpec[], env: Record<string, string>): string | undefined {
  const ids = new Set<string>();
  const envNames = new Set(Object.keys(env));
  for (const credential of credentials) {
    const parsed = parseCredentialSpec(credential);
    if ("problem" in parsed) return `credential ${credential.id ?? "?"}: ${parsed.problem}`;
    const name = `credential ${credential.id}`;
    if (credential.type !== "oauth2" && (credential.vendor !== undefined || credential.scopes !== undefined)) {
      return `${name}: vendor and scopes apply to oauth2 credentials only`;
    }
    if (ids.has(credential.id)) return `${name} is declared twice: credential ids must be unique`;
    ids.add(credential.id);
    if (tier === "sealed" && (credential.header === undefined || credential.format === undefined)) {
      return `${name}: a sealed server needs header=NAME and format=FORMAT (with ${TOKEN_SLOT}) for where the proxy injects it, e.g. header=Authorization,format=Bearer ${TOKEN_SLOT}`;
    }
    if (tier === "entrusted") {
      if (credential.env === undefined) return `${name}: an entrusted server needs env=VAR, the variable that receives the secret`;
      if (credential.header !== undefined || credential.format !== undefined) {
        return `${name}: header and format apply to sealed servers only (an entrusted server gets the secret in env=${credential.env})`;
      }
    }
    if (credential.env !== undefined) {
      if (envNames.has(credential.env)) return `${name}: env ${credential.env} is already set by --env or another credential`;
      envNames.add(credential.env);
    }
  }
  return undefined;
}
