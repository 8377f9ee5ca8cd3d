/**
 * What an operator agrees to when installing a registry server, as text to
 * show and as a hash to store: a later version whose hash differs (new
 * image, tier, hosts, credentials or tools) needs consent again. Display
 * fields, the version and the source repository do not count.
 */
import { createHash } from "node:crypto";
import { manifestRef, type Manifest, type ManifestCredential } from "./manifest.ts";

/** The consent-relevant part of a manifest, in a canonical form (lists sorted, so reordering changes nothing). */
function consentFields(manifest: Manifest) {
  return {
    name: manifest.name,
    image: manifest.image,
    tier: manifest.tier,
    egress: [...manifest.entitlements.egress].sort(),
    credentials: [...(manifest.credentials ?? [])]
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((credential) => ({ ...credential, scopes: credential.scopes && [...credential.scopes].sort() })),
    tools: [...manifest.tools].sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/** JSON with object keys sorted at every level and undefined fields left out. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** SHA-256 (hex) of the canonical JSON of the manifest's image, tier, egress, credentials and tools. */
export function consentHash(manifest: Manifest): string {
  return createHash("sha256").update(canonicalJson(consentFields(manifest))).digest("hex");
}

/** How a credential reaches the server, in words. */
function injectionText(tier: Manifest["tier"], credential: ManifestCredential): string {
  const { header, format, env } = credential.inject;
  if (tier === "sealed") return `the egress proxy sets header ${header}: ${format} (the server only holds a placeholder)`;
  return `the server receives the secret itself in env ${env}`;
}

/** Hosts in words: `*.x` is any host under x. */
export function egressText(entry: string): string {
  return entry.startsWith("*.") ? `${entry} (any host under ${entry.slice(2)})` : entry;
}

/** The lines to show before install: tier, egress hosts, credentials and how each is injected, tools, image. */
export function consentSummary(manifest: Manifest): string[] {
  const credentials = manifest.credentials ?? [];
  const enabled = manifest.tools.filter((tool) => tool.default).length;
  return [
    manifest.displayName ? `${manifest.displayName} (${manifestRef(manifest)})` : manifestRef(manifest),
    manifest.tier === "sealed"
      ? "Tier: sealed: credentials stay outside the sandbox; the egress proxy injects them"
      : "Tier: entrusted: the server itself receives its credentials",
    `Network access: ${manifest.entitlements.egress.length > 0 ? manifest.entitlements.egress.map(egressText).join(", ") : "none"}`,
    credentials.length > 0 ? "Credentials:" : "Credentials: none",
    ...credentials.map((credential) => {
      const details = [credential.type, credential.vendor && `vendor ${credential.vendor}`, credential.scopes?.length && `scopes ${credential.scopes.join(" ")}`];
      return `  ${credential.id} (${details.filter(Boolean).join(", ")}): ${injectionText(manifest.tier, credential)}`;
    }),
    `Tools: ${manifest.tools.length} (${enabled} enabled by default)`,
    `Image: ${manifest.image.ref}@${manifest.image.digest}`,
  ];
}
