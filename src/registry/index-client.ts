/**
 * The signed registry index. The bytes are downloaded whole (capped), their
 * ed25519 signature checked against the trusted keys before anything reads
 * them, then parsed strictly. An index older than the last one verified here
 * (a rollback) or older than the configured maximum age (a frozen mirror) is
 * refused. The last verified index and its signature are kept in
 * `<dataDir>/registry/` as the baseline for the rollback check.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import type { Config } from "../config/index.ts";
import { manifestRef, NAME_PATTERN, parseManifest, VERSION_PATTERN, type Manifest } from "./manifest.ts";
import { formatPath, issueProblems, problem, RegistryError, type Problem } from "./problems.ts";

/** Largest index accepted; the whole upstream catalog is well under 2 MiB. */
export const MAX_INDEX_BYTES = 32 * 1024 * 1024;
const MAX_SIGNATURE_BYTES = 1024;
const DOWNLOAD_TIMEOUT_MS = 60_000;
/** How far in the future `generated` may be (clock skew) before the index is refused: it would block every later index. */
const MAX_CLOCK_SKEW_MS = 60 * 60 * 1000;
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$/;
const DIGEST_REFERENCE = /^sha256:[0-9a-f]{64}$/;

export type RegistrySettings = Pick<Config, "dataDir" | "registryUrl" | "registryPublicKeys" | "registryMaxAgeMs">;

export interface RegistryServer {
  /** The highest version. */
  latest: string;
  versions: Record<string, Manifest>;
}

export interface VerifiedIndex {
  generated: Date;
  servers: Record<string, RegistryServer>;
  /** SHA-256 (hex) of the verified bytes: names exactly which index was used. */
  sha256: string;
}

export interface Registry {
  /** Downloads, verifies and parses the index; once per Registry (open a new one to look for a newer index). */
  index(): Promise<VerifiedIndex>;
  /** The manifest a reference names: `name` (latest), `name@1.2.3`, or `sha256:<image digest>`. */
  resolve(reference: string): Promise<Manifest>;
  /** Latest version of every server whose name, display name, description or category contains `text` (any case); all without text. */
  search(text?: string): Promise<Manifest[]>;
}

export interface RegistryOptions {
  /** The clock, for tests. */
  now?: () => number;
}

export function openRegistry(settings: RegistrySettings, options: RegistryOptions = {}): Registry {
  const now = options.now ?? Date.now;
  let loading: Promise<VerifiedIndex> | undefined;
  // A failed load is not remembered: the next call tries again.
  const index = () =>
    (loading ??= loadIndex(settings, now()).catch((error: unknown) => {
      loading = undefined;
      throw error;
    }));
  return {
    index,
    resolve: async (reference) => resolveReference(await index(), reference),
    search: async (text = "") => {
      const needle = text.toLowerCase();
      return Object.values((await index()).servers)
        .map((server) => server.versions[server.latest]!)
        .filter((manifest) =>
          [manifest.name, manifest.displayName, manifest.description, manifest.category].some((field) => field?.toLowerCase().includes(needle)),
        )
        .sort((a, b) => a.name.localeCompare(b.name));
    },
  };
}

async function loadIndex(settings: RegistrySettings, now: number): Promise<VerifiedIndex> {
  const source = settings.registryUrl;
  if (!source) throw new RegistryError("no registry is configured: set GIG_REGISTRY_URL to the index.json URL (or file path) and GIG_REGISTRY_PUBKEY to its key");
  if (settings.registryPublicKeys.length === 0) {
    throw new RegistryError("no trusted registry key: set GIG_REGISTRY_PUBKEY to the registry's ed25519 public key (64 hex digits) so the index can be verified");
  }
  const [bytes, signature] = await Promise.all([download(source, MAX_INDEX_BYTES), download(signatureLocation(source), MAX_SIGNATURE_BYTES)]);
  verifyIndexSignature(bytes, new TextDecoder().decode(signature), settings.registryPublicKeys, source);
  const index = parseIndex(bytes);

  const cacheDir = join(settings.dataDir, "registry");
  const cached = cachedGenerated(cacheDir, settings.registryPublicKeys);
  if (cached !== undefined && index.generated.getTime() < cached.getTime()) {
    throw new RegistryError(
      `refusing a rollback: the registry index at ${source} was generated ${iso(index.generated)}, before the one already verified here (${iso(cached)}); ` +
        `the source may be replaying an old index. If you moved to an older registry on purpose, delete ${cacheDir}`,
    );
  }
  const age = now - index.generated.getTime();
  if (age > settings.registryMaxAgeMs) {
    throw new RegistryError(
      `refusing a frozen index: the registry index at ${source} was generated ${iso(index.generated)}, more than GIG_REGISTRY_MAX_AGE (${duration(settings.registryMaxAgeMs)}) ago; ` +
        "the source may be a stale mirror or withholding updates. Point GIG_REGISTRY_URL at a current index",
    );
  }
  if (-age > MAX_CLOCK_SKEW_MS) {
    throw new RegistryError(`the registry index at ${source} claims to be generated ${iso(index.generated)}, in the future: check this machine's clock`);
  }
  writeAtomically(cacheDir, "index.json", bytes);
  writeAtomically(cacheDir, "index.json.sig", signature);
  return index;
}

/** Where the signature lives: the index location + `.sig` (before any query string of a URL). */
function signatureLocation(source: string): string {
  if (!isUrl(source)) return `${source}.sig`;
  const url = new URL(source);
  url.pathname += ".sig";
  return url.href;
}

function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** The whole content of a URL or file, refused past `limit` bytes. */
async function download(source: string, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new RegistryError(`${source} is larger than ${limit} bytes: that is not a registry index or signature`);
  if (!isUrl(source)) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) throw new RegistryError(`${source}: the registry must be an http(s) URL or a file path`);
    if (!existsSync(source)) throw new RegistryError(`${source} does not exist: check GIG_REGISTRY_URL (the .sig file must sit beside the index)`);
    if (statSync(source).size > limit) throw tooLarge();
    const bytes = new Uint8Array(readFileSync(source));
    if (bytes.length > limit) throw tooLarge();
    return bytes;
  }
  let response: Response;
  try {
    response = await fetch(source, { signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS) });
  } catch (error) {
    throw new RegistryError(`could not download ${source}: ${(error as Error).message}`);
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new RegistryError(`could not download ${source}: HTTP ${response.status}`);
  }
  if (Number(response.headers.get("content-length") ?? 0) > limit) {
    await response.body?.cancel();
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Throws unless `signatureText` (hex, surrounding whitespace ignored) is an
 * ed25519 signature of exactly `bytes` by one of `publicKeys` (hex).
 */
export function verifyIndexSignature(bytes: Uint8Array, signatureText: string, publicKeys: string[], source = "the registry index"): void {
  const signature = signatureText.trim();
  if (!/^[0-9a-fA-F]{128}$/.test(signature)) {
    throw new RegistryError(`the signature of ${source} is not 128 hex digits (a 64-byte ed25519 signature): the .sig file is damaged or is not a signature`);
  }
  const signatureBytes = Buffer.from(signature, "hex");
  const verifies = publicKeys.some((key) => {
    try {
      return ed25519.verify(signatureBytes, bytes, Buffer.from(key.trim(), "hex"), { zip215: false });
    } catch {
      return false; // a malformed key verifies nothing
    }
  });
  if (!verifies) {
    throw new RegistryError(
      `the signature of ${source} does not verify with any trusted key (GIG_REGISTRY_PUBKEY): the index was altered, or signed by a key you do not trust`,
    );
  }
}

const IndexSchema = v.strictObject({
  schemaVersion: v.literal(1, "must be 1 (this gateway reads index schema version 1)"),
  generated: v.pipe(
    v.string(),
    v.regex(RFC3339_UTC, "must be an RFC 3339 UTC time such as 2026-06-11T00:00:00Z"),
    v.check((text) => !Number.isNaN(Date.parse(text)), "is not a real date"),
  ),
  servers: v.record(
    v.pipe(v.string(), v.regex(NAME_PATTERN, "server names are lowercase letters, digits and inner hyphens")),
    v.strictObject({
      latest: v.pipe(v.string(), v.regex(VERSION_PATTERN, "must be a version MAJOR.MINOR.PATCH")),
      versions: v.record(v.pipe(v.string(), v.regex(VERSION_PATTERN, "versions are MAJOR.MINOR.PATCH")), v.unknown()),
    }),
  ),
});

/** Parses verified index bytes strictly; every manifest must pass the same checks as lint. */
export function parseIndex(bytes: Uint8Array): VerifiedIndex {
  let document: unknown;
  try {
    document = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new RegistryError(`the registry index is not valid JSON (${(error as Error).message}) although its signature verifies: report it to the registry`);
  }
  const result = v.safeParse(IndexSchema, document);
  if (!result.success) throw invalidIndex(issueProblems(result.issues));
  const problems: Problem[] = [];
  const servers: Record<string, RegistryServer> = {};
  for (const [name, server] of Object.entries(result.output.servers)) {
    const versions: Record<string, Manifest> = {};
    for (const [version, input] of Object.entries(server.versions)) {
      const at = ["servers", name, "versions", version];
      const parsed = parseManifest(input);
      if ("problems" in parsed) {
        problems.push(...parsed.problems.map((found) => problem([...at, ...found.path], found.message)));
        continue;
      }
      if (parsed.manifest.name !== name || parsed.manifest.version !== version) {
        problems.push(problem(at, `holds ${manifestRef(parsed.manifest)}, not ${name}@${version}`));
      }
      versions[version] = parsed.manifest;
    }
    const highest = Object.keys(server.versions).sort(compareVersions).at(-1);
    if (server.latest !== highest) problems.push(problem(["servers", name, "latest"], `is ${server.latest}, but the highest version listed is ${highest ?? "none"}`));
    servers[name] = { latest: server.latest, versions };
  }
  if (problems.length > 0) throw invalidIndex(problems);
  return {
    generated: new Date(result.output.generated),
    servers,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}

function invalidIndex(problems: Problem[]): RegistryError {
  const shown = problems.slice(0, 5).map((found) => `${formatPath(found.path)}: ${found.message}`);
  const more = problems.length > shown.length ? `; and ${problems.length - shown.length} more` : "";
  return new RegistryError(`the registry index is signed but not valid for this gateway: ${shown.join("; ")}${more}`);
}

function compareVersions(a: string, b: string): number {
  const left = a.split(".").map(Number);
  const right = b.split(".").map(Number);
  for (let part = 0; part < 3; part++) {
    const difference = (left[part] ?? 0) - (right[part] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

/** `generated` of the index cached here, if it still verifies with the trusted keys. */
function cachedGenerated(cacheDir: string, publicKeys: string[]): Date | undefined {
  const indexFile = join(cacheDir, "index.json");
  const signatureFile = `${indexFile}.sig`;
  if (!existsSync(indexFile) || !existsSync(signatureFile)) return undefined;
  try {
    const bytes = readFileSync(indexFile);
    verifyIndexSignature(bytes, readFileSync(signatureFile, "utf8"), publicKeys);
    const parsed = v.safeParse(v.object({ generated: v.pipe(v.string(), v.regex(RFC3339_UTC)) }), JSON.parse(bytes.toString("utf8")));
    return parsed.success ? new Date(parsed.output.generated) : undefined;
  } catch {
    // Signed by a key no longer trusted, or half-written by a crash: it is no baseline.
    return undefined;
  }
}

function writeAtomically(folder: string, name: string, bytes: Uint8Array): void {
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const temporary = join(folder, `.${name}.${process.pid}.${Date.now()}.tmp`);
  writeFileSync(temporary, bytes, { mode: 0o600 });
  renameSync(temporary, join(folder, name));
}

export type Reference = { digest: string } | { name: string; version: string | undefined };

/** Parses `name`, `name@1.2.3` or `sha256:<digest>`; throws a RegistryError saying what is wrong. */
export function parseReference(reference: string): Reference {
  if (reference.startsWith("sha256:")) {
    if (!DIGEST_REFERENCE.test(reference)) throw new RegistryError(`${reference}: a digest reference is sha256: followed by 64 lowercase hex digits`);
    return { digest: reference };
  }
  const at = reference.indexOf("@");
  const name = at < 0 ? reference : reference.slice(0, at);
  const version = at < 0 ? undefined : reference.slice(at + 1);
  if (version === "") throw new RegistryError(`${reference}: nothing after @; give a version (${name}@1.2.3) or just ${name} for the latest`);
  if (!NAME_PATTERN.test(name)) throw new RegistryError(`${reference}: expected NAME, NAME@VERSION or sha256:DIGEST, with NAME lowercase letters, digits and inner hyphens`);
  if (version !== undefined && !VERSION_PATTERN.test(version)) throw new RegistryError(`${reference}: the version must be MAJOR.MINOR.PATCH such as 1.2.3`);
  return { name, version };
}

function resolveReference(index: VerifiedIndex, reference: string): Manifest {
  const parsed = parseReference(reference);
  if ("digest" in parsed) {
    const matches = Object.values(index.servers).flatMap((server) => Object.values(server.versions)).filter((manifest) => manifest.image.digest === parsed.digest);
    if (matches.length === 0) throw new RegistryError(`no server in the registry has the image ${parsed.digest}`);
    if (matches.length > 1) throw new RegistryError(`the image ${parsed.digest} belongs to ${matches.map(manifestRef).join(", ")}: name one of them instead`);
    return matches[0]!;
  }
  const server = index.servers[parsed.name];
  if (!server || !Object.hasOwn(index.servers, parsed.name)) throw new RegistryError(`no server named ${parsed.name} in the registry (see \`gigmcp registry search\`)`);
  const version = parsed.version ?? server.latest;
  const manifest = Object.hasOwn(server.versions, version) ? server.versions[version] : undefined;
  if (!manifest) {
    const known = Object.keys(server.versions).sort(compareVersions).join(", ");
    throw new RegistryError(`${parsed.name} has no version ${version} in the registry; it has ${known}`);
  }
  return manifest;
}

function iso(date: Date): string {
  return date.toISOString().replace(".000Z", "Z");
}

function duration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  return `${Math.round(ms / 1000)}s`;
}
