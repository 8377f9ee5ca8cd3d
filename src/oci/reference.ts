/**
 * Image references the gateway accepts: an explicit registry host and a
 * repository, with the content pinned separately by a sha256 digest. Tags are
 * refused because they move; an implicit docker.io is refused because it hides
 * where code comes from.
 */
import { isIP } from "node:net";
import { OciError } from "./errors.ts";

export interface ImageReference {
  /** host[:port] as written, e.g. "ghcr.io" or "127.0.0.1:5000". */
  registry: string;
  /** Repository path inside the registry, e.g. "acme/weather-server". */
  repository: string;
}

const HOST_LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
const REGISTRY = new RegExp(`^(?:${HOST_LABEL}(?:\\.${HOST_LABEL})*|\\[[0-9a-fA-F:.]+\\])(?::\\d{1,5})?$`);
const REPOSITORY_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const REPOSITORY = new RegExp(`^${REPOSITORY_COMPONENT}(?:/${REPOSITORY_COMPONENT})*$`);
export const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Parses "registry-host[:port]/repo"; throws OciError saying how to write it. */
export function parseImageReference(text: string): ImageReference {
  if (text.includes("@")) throw new OciError(`image "${text}" carries a digest; give the repository alone and pass the digest separately`);
  const slash = text.indexOf("/");
  const registry = slash < 0 ? "" : text.slice(0, slash);
  const repository = slash < 0 ? text : text.slice(slash + 1);
  const looksLikeHost = registry.includes(".") || registry.includes(":") || registry === "localhost";
  if (!looksLikeHost || !REGISTRY.test(registry)) {
    throw new OciError(`image "${text}" does not start with a registry host; write it in full, e.g. ghcr.io/acme/server or registry-1.docker.io/library/node`);
  }
  if (repository.split("/").at(-1)?.includes(":")) {
    throw new OciError(`image "${text}" carries a tag; tags move, so give the repository alone and pin the content with a sha256 digest`);
  }
  if (!REPOSITORY.test(repository)) {
    throw new OciError(`image "${text}": "${repository}" is not a valid repository name (lowercase letters, digits, separators . _ - and /)`);
  }
  return { registry, repository };
}

/** Checks a pinned digest: only sha256, lowercase hex. */
export function parseDigest(text: string): string {
  if (!SHA256_DIGEST.test(text)) throw new OciError(`digest "${text}" is not of the form sha256:<64 lowercase hex digits>`);
  return text;
}

/** Hostname without brackets or port, as URL.hostname gives it. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "");
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}
