/**
 * Host names as the egress proxy judges them: CONNECT host syntax, a
 * server's egress allowlist and the operator's denylist.
 */

const DEFAULT_PORT = 443;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A DNS name in lowercase LDH syntax (no trailing dot, no IP literal: SNI
 * cannot carry one, and the tunnel requires SNI to equal the CONNECT host).
 */
export function isValidHostname(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  const labels = host.split(".");
  if (!labels.every((label) => LABEL.test(label))) return false;
  // An all-numeric last label would make "127.1" or "2130706433" look like a name.
  return !/^\d+$/.test(labels[labels.length - 1]!);
}

interface EgressEntry {
  kind: "exact" | "one-label" | "any-depth";
  /** The host itself for "exact", else the domain below the wildcard. */
  domain: string;
  port: number;
}

/**
 * Parses an allowlist entry: `api.example.com`, `*.example.com` (exactly one
 * more label), `**.example.com` (one or more), each optionally `:PORT`
 * (default 443). Undefined if malformed.
 */
function parseEgressEntry(text: string): EgressEntry | undefined {
  let entry = text.trim().toLowerCase();
  let port = DEFAULT_PORT;
  const portMatch = /:(\d{1,5})$/.exec(entry);
  if (portMatch) {
    port = Number(portMatch[1]);
    if (port < 1 || port > 65535) return undefined;
    entry = entry.slice(0, portMatch.index);
  }
  const kind = entry.startsWith("**.") ? "any-depth" : entry.startsWith("*.") ? "one-label" : "exact";
  const domain = entry.slice(kind === "any-depth" ? 3 : kind === "one-label" ? 2 : 0);
  return isValidHostname(domain) ? { kind, domain, port } : undefined;
}

/** True if `entry` is a well-formed allowlist entry (for validating server definitions). */
export function isValidEgressEntry(entry: string): boolean {
  return parseEgressEntry(entry) !== undefined;
}

/** True if `host:port` is allowed by one of `entries`; malformed entries allow nothing. */
export function matchesEgress(entries: string[], host: string, port: number): boolean {
  const name = host.toLowerCase();
  return entries.some((text) => {
    const entry = parseEgressEntry(text);
    if (!entry || entry.port !== port) return false;
    if (entry.kind === "exact") return name === entry.domain;
    const suffix = `.${entry.domain}`;
    if (!name.endsWith(suffix) || name.length === suffix.length) return false;
    return entry.kind === "any-depth" || !name.slice(0, -suffix.length).includes(".");
  });
}

/** Reads a denylist file: one domain per line; blank lines and # comments are skipped. */
export function loadDenylist(text: string): string[] {
  return text
    .split("\n")
    .map((line) => line.trim().toLowerCase())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

/** Answers "is this host denylisted" in one lookup per label of the host. */
export function createDenylistMatcher(domains: string[]): (host: string) => string | undefined {
  const denied = new Set(domains.map((domain) => domain.trim().toLowerCase().replace(/\.$/, "")).filter(Boolean));
  return (host) => {
    // The host, then each parent domain: api.evil.test, evil.test, test.
    for (let candidate = host; ; ) {
      if (denied.has(candidate)) return candidate;
      const dot = candidate.indexOf(".");
      if (dot < 0) return undefined;
      candidate = candidate.slice(dot + 1);
    }
  };
}
