/**
 * Egress entries as registry manifests write them, and how they become the
 * egress proxy's allowlist. In a manifest `*.example.com` means any host
 * under example.com, at any depth (the registry's rule, which real entries
 * rely on: `*.dynamics.com` must allow `org.api.crm.dynamics.com`). The
 * proxy's `*.` is exactly one label, so installing turns `*.x` into `**.x`.
 */
import { isIP } from "node:net";
import { isValidEgressEntry, matchesEgress } from "../proxy/index.ts";

const LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const HTTPS_PORT = 443;

/** Why `host` is not a bare lowercase DNS name, or undefined if it is one. */
function hostnameProblem(host: string): string | undefined {
  if (host === "") return "empty host name";
  if (host.includes("*")) return 'a wildcard is allowed only as a leading "*."';
  if (isIP(host) !== 0) return "IP addresses are not allowed: give a host name";
  if (!host.split(".").every((label) => LABEL.test(label))) {
    return "each label must be lowercase letters and digits, with hyphens only inside (e.g. api.example.com)";
  }
  if (!isValidEgressEntry(host)) return "not a host name the egress proxy accepts (labels of at most 63 characters, a name of at most 253, a last label that is not all digits)";
  return undefined;
}

/** Why `entry` is not a valid manifest egress entry (`host` or `*.` + a suffix of at least two labels), or undefined. */
export function egressEntryProblem(entry: string): string | undefined {
  if (entry.includes(":") || entry.includes("/")) return "ports, paths and URLs are not allowed: give a bare host name such as api.example.com";
  const wildcard = entry.startsWith("*.");
  const host = wildcard ? entry.slice(2) : entry;
  const hostProblem = hostnameProblem(host);
  if (hostProblem) return hostProblem;
  if (wildcard && host.split(".").length < 2) return `"${entry}" is too broad: a wildcard needs a suffix of at least two labels, e.g. *.example.com`;
  return undefined;
}

/**
 * The host of a toolspec `baseUrl`, which must be exactly `https://HOST`;
 * a problem if it is anything else.
 */
export function baseUrlHost(baseUrl: string): { host: string } | { problem: string } {
  const prefix = "https://";
  if (!baseUrl.startsWith(prefix)) return { problem: "must start with https://" };
  const host = baseUrl.slice(prefix.length);
  if (/[/?#@:]/.test(host)) return { problem: "must be exactly https://HOST: no port, path, query, fragment or user info (put the path in each tool's path)" };
  const hostProblem = hostnameProblem(host);
  return hostProblem ? { problem: hostProblem } : { host };
}

/** The manifest's egress entries in the proxy's syntax: `*.x` (any depth in a manifest) becomes `**.x`. */
export function egressForProxy(manifest: { entitlements: { egress: string[] } }): string[] {
  return manifest.entitlements.egress.map((entry) => (entry.startsWith("*.") ? `*${entry}` : entry));
}

/** True if the manifest's egress allows `host` (on 443), judged exactly as the proxy will once installed. */
export function egressAllows(manifest: { entitlements: { egress: string[] } }, host: string): boolean {
  return matchesEgress(egressForProxy(manifest), host, HTTPS_PORT);
}

/** The denylisted domain an egress entry reaches (the entry without `*.` equals it or is under it), if any. */
export function deniedDomain(entry: string, denylist: string[]): string | undefined {
  const host = entry.startsWith("*.") ? entry.slice(2) : entry;
  return denylist.find((domain) => host === domain || host.endsWith(`.${domain}`));
}
