/**
 * Anti-SSRF: which resolved addresses the egress proxy refuses to connect to.
 * A sandboxed server names a host; the proxy resolves it and refuses if any
 * answer points inside the host, its networks or the cloud's control plane,
 * whichever IPv6 spelling of an IPv4 address the answer uses.
 */

export interface Network {
  /** Address as a 128-bit number; IPv4 networks are kept in their IPv4-mapped form (::ffff:a.b.c.d). */
  base: bigint;
  prefix: number;
}

interface ForbiddenRange extends Network {
  kind: string;
}

const IPV4_MAPPED_BASE = 0xffffn << 32n;

/** Most specific first: the first range holding an address names its kind. */
const FORBIDDEN_IPV4: [string, string][] = [
  ["169.254.169.254/32", "cloud metadata"],
  ["168.63.129.16/32", "cloud metadata"],
  ["255.255.255.255/32", "broadcast"],
  ["0.0.0.0/32", "unspecified"],
  ["0.0.0.0/8", "this network"],
  ["10.0.0.0/8", "private"],
  ["100.64.0.0/10", "shared (CGNAT)"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local"],
  ["172.16.0.0/12", "private"],
  ["192.0.0.0/24", "IETF protocol assignments"],
  ["192.0.2.0/24", "documentation"],
  ["192.88.99.0/24", "6to4 relay"],
  ["192.168.0.0/16", "private"],
  ["198.18.0.0/15", "benchmarking"],
  ["198.51.100.0/24", "documentation"],
  ["203.0.113.0/24", "documentation"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved"],
];

/** IPv6 ranges checked on the address itself; forms that embed an IPv4 address are handled apart. */
const FORBIDDEN_IPV6: [string, string][] = [
  ["fd00:ec2::254/128", "cloud metadata"],
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["100::/64", "discard"],
  ["2001::/32", "Teredo"],
  ["2001:db8::/32", "documentation"],
  ["fc00::/7", "unique local"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "site-local"],
  ["ff00::/8", "multicast"],
];

/** IPv6 forms carrying an IPv4 address: judged by that address. */
const EMBEDDING_IPV4: { network: string; shift: bigint }[] = [
  { network: "::ffff:0:0/96", shift: 0n }, // IPv4-mapped
  { network: "::/96", shift: 0n }, // IPv4-compatible (deprecated)
  { network: "64:ff9b::/96", shift: 0n }, // NAT64 well-known prefix (the local-use 64:ff9b:1::/48 falls under "reserved")
  { network: "2002::/16", shift: 80n }, // 6to4: the IPv4 address follows the prefix
];

/** Outside 2000::/3 nothing is globally routed unicast. */
const GLOBAL_UNICAST_V6 = parseNetwork("2000::/3")!;

const forbiddenV4 = FORBIDDEN_IPV4.map(([text, kind]) => ({ ...parseNetwork(text)!, kind }));
const forbiddenV6 = FORBIDDEN_IPV6.map(([text, kind]) => ({ ...parseNetwork(text)!, kind }));
const embedding = EMBEDDING_IPV4.map(({ network, shift }) => ({ ...parseNetwork(network)!, shift }));

/**
 * Why the proxy must not connect to `ip` ("loopback", "private", "cloud
 * metadata", …), or undefined if it may. `allow` lists addresses or CIDR
 * networks the operator exempts; an invalid entry is an error.
 */
export function isForbiddenAddress(ip: string, allow: string[]): string | undefined {
  return forbiddenReason(ip, parseAllowList(allow));
}

/** isForbiddenAddress() with the allow list parsed once, for the proxy's hot path. */
export function forbiddenReason(ip: string, allow: Network[]): string | undefined {
  const value = parseAddress(ip);
  if (value === undefined) return "invalid address";
  if (allow.some((network) => contains(network, value))) return undefined;
  return forbiddenKind(value);
}

/** Parses operator-supplied addresses or CIDRs; throws naming the first bad entry. */
export function parseAllowList(entries: string[]): Network[] {
  return entries.map((entry) => {
    const network = parseNetwork(entry.trim());
    if (!network) throw new Error(`invalid allowed address ${JSON.stringify(entry)}: expected an IP address or CIDR such as 10.0.0.0/8`);
    return network;
  });
}

function forbiddenKind(value: bigint): string | undefined {
  if (isIpv4Mapped(value)) return forbiddenV4.find((range) => contains(range, value))?.kind;
  for (const form of embedding) {
    // ::/96 also holds :: and ::1, which are themselves, not IPv4 addresses.
    if (!contains(form, value) || (form.prefix === 96 && value <= 1n)) continue;
    const v4 = (value >> form.shift) & 0xffffffffn;
    return forbiddenV4.find((range) => contains(range, IPV4_MAPPED_BASE | v4))?.kind;
  }
  const kind = forbiddenV6.find((range) => contains(range, value))?.kind;
  if (kind) return kind;
  return contains(GLOBAL_UNICAST_V6, value) ? undefined : "reserved";
}

function isIpv4Mapped(value: bigint): boolean {
  return value >> 32n === 0xffffn;
}

function contains(network: Network, value: bigint): boolean {
  const hostBits = BigInt(128 - network.prefix);
  return value >> hostBits === network.base >> hostBits;
}

function parseNetwork(text: string): Network | undefined {
  const [address, prefixText, ...rest] = text.split("/");
  if (rest.length > 0 || address === undefined) return undefined;
  const base = parseAddress(address);
  if (base === undefined) return undefined;
  const isV4 = !address.includes(":");
  const width = isV4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const length = prefixText === undefined ? width : Number(prefixText);
  if (length > width) return undefined;
  return { base, prefix: isV4 ? 96 + length : length };
}

/** An IPv4 or IPv6 address as a 128-bit number (IPv4 as ::ffff:a.b.c.d), or undefined if malformed. */
function parseAddress(text: string): bigint | undefined {
  if (!text.includes(":")) {
    const v4 = parseIpv4(text);
    return v4 === undefined ? undefined : IPV4_MAPPED_BASE | v4;
  }
  // A zone (fe80::1%eth0) names an interface, not part of the address.
  return parseIpv6(text.replace(/%[\w.-]+$/, ""));
}

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    // Decimal only, no leading zeros: "010" is octal to some parsers.
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return undefined;
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

function parseIpv6(text: string): bigint | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (half: string | undefined): number[] | undefined => {
    if (!half) return [];
    const groups: number[] = [];
    const pieces = half.split(":");
    for (const [index, piece] of pieces.entries()) {
      if (index === pieces.length - 1 && piece.includes(".")) {
        const v4 = parseIpv4(piece);
        if (v4 === undefined) return undefined;
        groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else if (/^[0-9a-f]{1,4}$/i.test(piece)) {
        groups.push(parseInt(piece, 16));
      } else {
        return undefined;
      }
    }
    return groups;
  };
  const head = groupsOf(halves[0]);
  const tail = groupsOf(halves[1]);
  if (!head || !tail) return undefined;
  const compressed = halves.length === 2;
  const missing = 8 - head.length - tail.length;
  if (compressed ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  return groups.reduce((sum, group) => (sum << 16n) | BigInt(group), 0n);
}
