/**
 * The registry manifest: what a server is, which image runs it, where it may
 * connect and which credentials it needs. Parsed strictly: unknown fields
 * and values of the wrong type are refused with their field path.
 */
import * as v from "valibot";
import { egressEntryProblem } from "./egress.ts";
import { issueProblems, problem, RegistryError, type Problem } from "./problems.ts";

export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
export const VERSION_PATTERN = /^(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)$/;
const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;
/** Placeholder digest of a server whose image is not published yet: valid syntax, never installable. */
const PLACEHOLDER_DIGEST = `sha256:${"0".repeat(64)}`;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Headers that frame or route a request: neither a credential nor a tool parameter may set them. */
export const RESERVED_HEADERS = new Set(["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive"]);
export const TOKEN_SLOT = "{token}";
export const CATEGORIES = [
  "ai", "analytics", "comms", "CRM", "data", "design", "dev-tools", "documents", "e-commerce",
  "finance", "HR/ATS", "marketing", "productivity", "search", "social", "storage", "support",
] as const;

const nonEmpty = (what: string) => v.pipe(v.string(), v.minLength(1, `${what} must not be empty`));
const slug = (what: string) => v.pipe(v.string(), v.regex(NAME_PATTERN, `${what} must be lowercase letters, digits and inner hyphens`));

export const headerName = v.pipe(
  v.string(),
  v.regex(HEADER_NAME, "must be an HTTP header name such as Authorization"),
  v.check((name) => !RESERVED_HEADERS.has(name.toLowerCase()), (issue) => `header ${issue.input} frames the request and cannot be set here`),
);

export const headerFormat = v.pipe(
  v.string(),
  v.check((format) => format.split(TOKEN_SLOT).length === 2, `must contain ${TOKEN_SLOT} exactly once, e.g. "Bearer ${TOKEN_SLOT}"`),
  v.check((format) => !/[\u0000-\u001f\u007f]/.test(format), "must not contain control characters"),
);

const egressEntry = v.pipe(
  v.string(),
  v.check((entry) => egressEntryProblem(entry) === undefined, (issue) => egressEntryProblem(issue.input as string)!),
);

const CredentialSchema = v.strictObject({
  id: nonEmpty("a credential id"),
  // Gig'MCP injects these three kinds; the registry's comment mentions custom_env, which no manifest uses.
  type: v.picklist(["api_key", "oauth2", "basic"], "must be api_key, oauth2 or basic"),
  provider: slug("provider"),
  scopes: v.optional(v.array(nonEmpty("a scope"))),
  inject: v.strictObject({
    header: v.optional(headerName),
    format: v.optional(headerFormat),
    env: v.optional(v.pipe(v.string(), v.regex(ENV_NAME, "must be an environment variable name (letters, digits and _, not starting with a digit)"))),
  }),
  vendor: v.optional(slug("vendor")),
});

/** Field order follows the registry's own (its index is written in this order). */
export const ManifestSchema = v.strictObject({
  schemaVersion: v.literal(1, "must be 1 (the only schema version there is)"),
  name: v.pipe(v.string(), v.regex(NAME_PATTERN, "must be lowercase letters, digits and inner hyphens, e.g. acme-notes")),
  version: v.pipe(v.string(), v.regex(VERSION_PATTERN, "must be MAJOR.MINOR.PATCH such as 1.2.3 (no leading zeros, no suffix)")),
  source: v.strictObject({
    repo: nonEmpty("source.repo"),
    tag: nonEmpty("source.tag"),
    package: v.optional(
      v.pipe(
        v.string(),
        v.regex(/^[a-zA-Z0-9._/-]+$/, "must be a relative path of letters, digits and . _ / -"),
        v.check((path) => !path.startsWith("/") && !path.includes(".."), "must be a relative path inside the repository (no leading / and no ..)"),
      ),
    ),
  }),
  image: v.strictObject({
    ref: nonEmpty("image.ref"),
    digest: v.pipe(v.string(), v.regex(DIGEST_PATTERN, "must be sha256: followed by 64 lowercase hex digits")),
    entrypoint: v.pipe(v.string(), v.startsWith("/", "must be an absolute path such as /app/server")),
    builder: v.optional(v.picklist(["go-static", "node", "python", "toolpack"], "must be go-static, node, python or toolpack (or left out)")),
  }),
  tier: v.picklist(["sealed", "entrusted"], "must be sealed or entrusted"),
  entitlements: v.strictObject({ egress: v.array(egressEntry) }),
  credentials: v.optional(v.array(CredentialSchema)),
  tools: v.array(v.strictObject({ name: nonEmpty("a tool name"), default: v.boolean() })),
  displayName: v.optional(v.string()),
  description: v.optional(v.string()),
  category: v.optional(v.picklist(CATEGORIES, `must be one of ${CATEGORIES.join(", ")}`)),
  icon: v.optional(v.string()),
});

export type Manifest = v.InferOutput<typeof ManifestSchema>;
export type ManifestCredential = NonNullable<Manifest["credentials"]>[number];

/** Validates a parsed document as a manifest: the manifest, or every problem found. */
export function parseManifest(input: unknown): { manifest: Manifest } | { problems: Problem[] } {
  const { manifest, problems } = checkManifest(input);
  return manifest && problems.length === 0 ? { manifest } : { problems };
}

/** Every problem of a manifest, and the manifest itself if its structure is sound (so later checks can still run). */
export function checkManifest(input: unknown): { manifest: Manifest | undefined; problems: Problem[] } {
  const result = v.safeParse(ManifestSchema, input);
  if (!result.success) return { manifest: undefined, problems: issueProblems(result.issues) };
  return { manifest: result.output, problems: manifestRuleProblems(result.output) };
}

/** Rules that span fields: unique names, and how each credential is injected for the tier. */
function manifestRuleProblems(manifest: Manifest): Problem[] {
  const problems: Problem[] = [];
  duplicates(manifest.tools.map((tool) => tool.name)).forEach((index) =>
    problems.push(problem(["tools", index, "name"], `tool ${manifest.tools[index]!.name} is listed twice: tool names must be unique`)),
  );
  const credentials = manifest.credentials ?? [];
  duplicates(credentials.map((credential) => credential.id)).forEach((index) =>
    problems.push(problem(["credentials", index, "id"], `credential ${credentials[index]!.id} is declared twice: ids must be unique`)),
  );
  credentials.forEach((credential, index) => {
    const at = ["credentials", index];
    if (credential.type === "oauth2" && credential.vendor === undefined) {
      problems.push(problem([...at, "vendor"], "an oauth2 credential needs vendor, the OAuth provider's slug"));
    }
    const { header, format, env } = credential.inject;
    if (manifest.tier === "sealed") {
      if (header === undefined || format === undefined) {
        problems.push(problem([...at, "inject"], `a sealed server's credential needs header and format (with ${TOKEN_SLOT}): the egress proxy injects it there`));
      }
      if (env !== undefined) problems.push(problem([...at, "inject", "env"], "a sealed server never receives the secret: use header and format, not env"));
    } else {
      if (env === undefined) problems.push(problem([...at, "inject"], "an entrusted server's credential needs env, the variable that receives the secret"));
      if (header !== undefined || format !== undefined) {
        problems.push(problem([...at, "inject"], "an entrusted server's credential takes only env (header and format are for sealed servers)"));
      }
    }
  });
  return problems;
}

/** Indexes of values that already appeared earlier in the list. */
export function duplicates(values: string[]): number[] {
  const seen = new Set<string>();
  return values.flatMap((value, index) => (seen.has(value) ? [index] : (seen.add(value), [])));
}

/** `name@version`, the way references and messages name a manifest. */
export function manifestRef(manifest: Manifest): string {
  return `${manifest.name}@${manifest.version}`;
}

/** Throws if a manifest that passes lint still cannot be installed (its image is only a placeholder). */
export function assertInstallable(manifest: Manifest): void {
  if (manifest.image.digest === PLACEHOLDER_DIGEST) {
    throw new RegistryError(
      `${manifestRef(manifest)} cannot be installed: its image digest is the all-zero placeholder, so no image has been published for it yet; pick another version or wait for one with a real digest`,
    );
  }
}
