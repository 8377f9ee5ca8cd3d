/**
 * Every setting comes from a GIG_* environment variable. Each variable has one
 * entry in SETTINGS: its default, what it allows and how it is parsed. The README
 * table is checked against this list by a test, so the two cannot drift.
 */
import * as v from "valibot";
import { readFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { isIP } from "node:net";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type SandboxMode = "bwrap" | "off";

export interface ListenAddress {
  /** Empty string means every interface. */
  host: string;
  port: number;
}

export interface Config {
  listen: ListenAddress;
  proxyPort: number;
  dataDir: string;
  dbUrl: string;
  publicUrl: URL | undefined;
  allowedOrigins: string[];
  logLevel: LogLevel;
  idleTimeoutMs: number;
  callTimeoutMs: number;
  sessionIdleTimeoutMs: number;
  sandbox: SandboxMode;
  sandboxUidBase: number;
  subnetPool: string;
  sandboxMemoryBytes: number;
  sandboxPids: number;
  sandboxCpuWeight: number;
  sandboxCgroup: string;
  /** Inline master keyring (GIG_MASTER_KEY), if set. */
  masterKey: string | undefined;
  /** File holding the master keyring (GIG_MASTER_KEY_FILE), if set. */
  masterKeyFile: string | undefined;
  /** Extra egress denylist file (GIG_EGRESS_DENYLIST), if set. */
  egressDenylistFile: string | undefined;
  /** Addresses/networks the proxy may connect to despite the anti-SSRF rules (GIG_EGRESS_ALLOW_ADDRESSES). */
  egressAllowAddresses: string[];
  /** Where the signed index lives: an http(s) URL of index.json, or a file path (GIG_REGISTRY_URL). */
  registryUrl: string | undefined;
  /** Trusted ed25519 public keys of the registry, 32 bytes hex each (GIG_REGISTRY_PUBKEY). */
  registryPublicKeys: string[];
  /** An index older than this is refused as frozen (GIG_REGISTRY_MAX_AGE). */
  registryMaxAgeMs: number;
  /** The registry's manifests folder (path or URL) holding <name>/<version>.toolspec.yaml (GIG_REGISTRY_TOOLSPECS). */
  registryToolspecs: string | undefined;
  oidc: OidcConfig | undefined;
  /** OAuth apps set by GIG_OAUTH_<VENDOR>_* variables; each overrides the app of that vendor stored by `gigmcp oauth-app set`. */
  oauthApps: OAuthAppConfig[];
  /** Requests per minute one bearer token or session may make, and one client address (GIG_RATE_LIMIT, GIG_RATE_LIMIT_IP). */
  rateLimit: number;
  rateLimitIp: number;
  /** Bearer token that opens /metrics (GIG_METRICS_TOKEN); unset, /metrics does not exist. */
  metricsToken: string | undefined;
  /** Where traces are exported (GIG_OTEL_ENDPOINT, GIG_OTEL_HEADERS); unset, nothing is traced. */
  otel: OtelConfig | undefined;
  /** Where the dashboard served at / comes from (GIG_DASHBOARD, GIG_DASHBOARD_DIR); unset, the dashboard runs as its own service. */
  dashboard: DashboardSource | undefined;
}

/** The dashboard's static export: the copy embedded in the executable, or a folder (for development). */
export type DashboardSource = { kind: "embedded" } | { kind: "directory"; dir: string };

/** An OTLP/HTTP collector; set when GIG_OTEL_ENDPOINT is. */
export interface OtelConfig {
  /** The collector's base URL; traces go to <endpoint>/v1/traces. */
  endpoint: URL;
  /** Sent with every export, typically the collector's credentials: never logged. */
  headers: Record<string, string>;
}

/** Login through an OpenID Connect provider; set when GIG_OIDC_ISSUER is. */
export interface OidcConfig {
  issuer: string;
  clientId: string;
  clientSecret: string | undefined;
  scopes: string[];
  allowedEmailDomains: string[];
  adminGroups: string[];
  groupsClaim: string;
}

/** An OAuth app of one vendor from GIG_OAUTH_<VENDOR>_* (unset fields fall back to the vendor's preset). */
export interface OAuthAppConfig {
  /** The registry's vendor slug: GIG_OAUTH_STACK_EXCHANGE_* is vendor stack-exchange. */
  vendor: string;
  clientId: string;
  clientSecret: string | undefined;
  authorizeUrl: string | undefined;
  tokenUrl: string | undefined;
  revokeUrl: string | undefined;
  scopes: string[] | undefined;
  pkce: boolean | undefined;
}

/** Whether this is the compiled gigmcp executable (its modules live in Bun's embedded file system), not bun running the sources. */
export function runningCompiled(): boolean {
  return Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
}

/** A bad setting: the message names the variable and what it allows. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const DURATION_UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Parses "500ms", "30s", "10m", "1h" into milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * DURATION_UNIT_MS[match[2] as keyof typeof DURATION_UNIT_MS];
}

const SIZE = /^(\d+)([KMG]?)$/i;
const SIZE_UNIT = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 } as const;

/** Parses "512M", "2G", "65536K" or a plain byte count. */
export function parseBytes(text: string): number | undefined {
  const match = SIZE.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * SIZE_UNIT[match[2]!.toUpperCase() as keyof typeof SIZE_UNIT];
}

/** Valid per-sandbox limits, shared by the GIG_SANDBOX_* settings and `server add`. */
export const LIMIT_RANGES = {
  memoryBytes: { min: 16 * 1024 ** 2, max: 1024 ** 4 },
  pids: { min: 8, max: 65536 },
  cpuWeight: { min: 1, max: 10000 },
} as const;

const integerIn = (range: { min: number; max: number }) =>
  v.pipe(v.string(), v.regex(/^\d+$/), v.transform(Number), v.number(), v.minValue(range.min), v.maxValue(range.max));

const byteSize = (range: { min: number; max: number }) =>
  v.pipe(v.string(), v.transform(parseBytes), v.number(), v.minValue(range.min), v.maxValue(range.max));

const ipv4Cidr = v.pipe(
  v.string(),
  v.check((text) => {
    const [address, prefix, ...rest] = text.split("/");
    if (rest.length > 0 || isIP(address ?? "") !== 4 || !/^\d{1,2}$/.test(prefix ?? "")) return false;
    const length = Number(prefix);
    if (length < 8 || length > 28) return false;
    const value = address!.split(".").reduce((sum, octet) => sum * 256 + Number(octet), 0);
    return value % 2 ** (32 - length) === 0;
  }),
);

const portNumber = (min: number) =>
  v.pipe(v.string(), v.regex(/^\d{1,5}$/), v.transform(Number), v.number(), v.minValue(min), v.maxValue(65535));
const port = portNumber(1);

const duration = (min: number) =>
  v.pipe(
    v.string(),
    v.transform(parseDuration),
    v.number(),
    v.minValue(min),
  );

const listen = v.pipe(
  v.string(),
  v.transform((text): ListenAddress | undefined => {
    const at = text.lastIndexOf(":");
    if (at < 0) return undefined;
    let host = text.slice(0, at);
    if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
    if (host !== "" && host !== "localhost" && isIP(host) === 0) return undefined;
    // Port 0 asks the kernel for a free port (tests, ephemeral setups).
    const parsed = v.safeParse(portNumber(0), text.slice(at + 1));
    return parsed.success ? { host, port: parsed.output } : undefined;
  }),
  v.object({ host: v.string(), port: v.number() }),
);

const httpUrl = v.pipe(
  v.string(),
  v.url(),
  v.transform((text) => new URL(text)),
  v.check((url) => url.protocol === "http:" || url.protocol === "https:"),
);

const originList = v.pipe(
  v.string(),
  v.transform((text) => text.split(",").map((item) => item.trim()).filter(Boolean)),
  v.array(
    v.pipe(
      v.string(),
      v.check((item) => {
        try {
          const url = new URL(item);
          return (url.protocol === "http:" || url.protocol === "https:") && url.origin === item.replace(/\/$/, "");
        } catch {
          return false;
        }
      }),
    ),
  ),
  v.transform((items) => items.map((item) => new URL(item).origin)),
);

interface Setting<T> {
  env: string;
  default: string | undefined;
  allowed: string;
  description: string;
  schema: v.GenericSchema<string, T>;
  /** The value is a secret: an error about it must not repeat it. */
  secret?: true;
}

/** "name=value,name2=value2" with percent-encoded values (the OTEL_EXPORTER_OTLP_HEADERS form). */
const headerList = v.pipe(
  v.string(),
  v.transform((text): Record<string, string> | undefined => {
    const headers: Record<string, string> = {};
    for (const item of text.split(",")) {
      const at = item.indexOf("=");
      if (at < 0) return undefined;
      const name = item.slice(0, at).trim().toLowerCase();
      let value: string;
      try {
        value = decodeURIComponent(item.slice(at + 1).trim());
      } catch {
        return undefined;
      }
      if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name) || /[\r\n\0]/.test(value)) return undefined;
      headers[name] = value;
    }
    return headers;
  }),
  v.record(v.string(), v.string()),
);

/** A URL's password replaced by ***, for messages: database URLs carry one. */
export function redactUrlPassword(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*):[^@/?#]*@/i, "$1:***@");
}

function setting<T>(spec: Setting<T>): Setting<T> {
  return spec;
}

/** The single source of truth for settings; the README table mirrors it. */
export const SETTINGS = {
  listen: setting({
    env: "GIG_LISTEN",
    default: ":8080",
    allowed: "[host]:port, host an IP literal or localhost",
    description: "Address of the MCP and REST server.",
    schema: listen,
  }),
  proxyPort: setting({
    env: "GIG_PROXY_PORT",
    default: "8081",
    allowed: "a port 1-65535",
    description: "Port of the egress proxy on each sandbox's host-side address.",
    schema: port,
  }),
  dataDir: setting({
    env: "GIG_DATA_DIR",
    default: "./data",
    allowed: "a directory path",
    description: "Where the database, keys and images live.",
    schema: v.pipe(v.string(), v.minLength(1)),
  }),
  dbUrl: setting({
    env: "GIG_DB_URL",
    default: undefined,
    allowed: "sqlite:PATH (relative to GIG_DATA_DIR unless absolute) or postgres://USER:PASSWORD@HOST:PORT/DATABASE",
    description: "Database; defaults to sqlite:gigmcp.db in the data dir.",
    schema: v.pipe(
      v.string(),
      v.check((text) => /^sqlite:.+/.test(text) || /^postgres(ql)?:\/\/[^/]+\/[^/?#]+/.test(text)),
    ),
  }),
  publicUrl: setting({
    env: "GIG_PUBLIC_URL",
    default: undefined,
    allowed: "an http(s) URL",
    description: "URL clients use to reach the gateway; printed in MCP URLs and trusted as Host/Origin.",
    schema: httpUrl,
  }),
  allowedOrigins: setting({
    env: "GIG_ALLOWED_ORIGINS",
    default: "",
    allowed: "comma-separated origins such as https://app.example.com",
    description: "Extra Origins (and their hosts) accepted besides the gateway's own.",
    schema: originList,
  }),
  logLevel: setting({
    env: "GIG_LOG_LEVEL",
    default: "info",
    allowed: "debug, info, warn or error",
    description: "Least severe log level written to stderr.",
    schema: v.picklist(["debug", "info", "warn", "error"]),
  }),
  idleTimeoutMs: setting({
    env: "GIG_IDLE_TIMEOUT",
    default: "10m",
    allowed: "a duration such as 90s, 10m or 1h (at least 1s)",
    description: "A backend with no call for this long is stopped; it restarts on next use.",
    schema: duration(1000),
  }),
  callTimeoutMs: setting({
    env: "GIG_CALL_TIMEOUT",
    default: "60s",
    allowed: "a duration (at least 100ms)",
    description: "Default time a backend has to answer one request (servers may override).",
    schema: duration(100),
  }),
  sessionIdleTimeoutMs: setting({
    env: "GIG_SESSION_IDLE_TIMEOUT",
    default: "30m",
    allowed: "a duration (at least 1s)",
    description: "An MCP client session with no request for this long is closed.",
    schema: duration(1000),
  }),
  sandbox: setting({
    env: "GIG_SANDBOX",
    default: "bwrap",
    allowed: "bwrap or off",
    description: "How backends are isolated; off is for development only.",
    schema: v.picklist(["bwrap", "off"]),
  }),
  sandboxUidBase: setting({
    env: "GIG_SANDBOX_UID_BASE",
    default: "200000",
    allowed: "a uid 1000-4000000000 starting a range no host account uses",
    description: "Sandbox N runs as host uid/gid base+N: never root, one identity per sandbox.",
    schema: integerIn({ min: 1000, max: 4_000_000_000 }),
  }),
  subnetPool: setting({
    env: "GIG_SUBNET_POOL",
    default: "10.88.0.0/16",
    allowed: "an IPv4 network such as 10.88.0.0/16 (prefix 8-28, aligned)",
    description: "Addresses for sandbox veths; each sandbox takes one /30.",
    schema: ipv4Cidr,
  }),
  sandboxMemoryBytes: setting({
    env: "GIG_SANDBOX_MEMORY",
    default: "512M",
    allowed: "a size such as 256M or 2G (16M-1024G)",
    description: "Memory limit per sandbox (servers may override).",
    schema: byteSize(LIMIT_RANGES.memoryBytes),
  }),
  sandboxPids: setting({
    env: "GIG_SANDBOX_PIDS",
    default: "256",
    allowed: "8-65536",
    description: "Most processes and threads per sandbox (servers may override).",
    schema: integerIn(LIMIT_RANGES.pids),
  }),
  sandboxCpuWeight: setting({
    env: "GIG_SANDBOX_CPU",
    default: "100",
    allowed: "a CPU weight 1-10000 (100 is an even share)",
    description: "Relative CPU share per sandbox (servers may override).",
    schema: integerIn(LIMIT_RANGES.cpuWeight),
  }),
  sandboxCgroup: setting({
    env: "GIG_SANDBOX_CGROUP",
    default: "gigmcp",
    allowed: "a cgroup name (letters, digits, . _ -)",
    description: "Cgroup under which each sandbox gets its own group, in every controller hierarchy.",
    schema: v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/)),
  }),
  masterKey: setting({
    env: "GIG_MASTER_KEY",
    default: undefined,
    allowed: "a keyring: ID:BASE64KEY[,ID:BASE64KEY…], each key 32 bytes; the first encrypts",
    description: "Master key(s) wrapping every secret's data key. Prefer GIG_MASTER_KEY_FILE.",
    schema: v.pipe(v.string(), v.minLength(1)),
  }),
  masterKeyFile: setting({
    env: "GIG_MASTER_KEY_FILE",
    default: undefined,
    allowed: "a path to a file holding the keyring, one ID:BASE64KEY per line",
    description: "Master keyring file; with neither variable, development mode creates one in the data dir.",
    schema: v.pipe(v.string(), v.minLength(1)),
  }),
  egressDenylistFile: setting({
    env: "GIG_EGRESS_DENYLIST",
    default: undefined,
    allowed: "a path to a file of domains, one per line (# comments)",
    description: "Domains refused for every server, added to the built-in exfiltration denylist.",
    schema: v.pipe(v.string(), v.minLength(1)),
  }),
  egressAllowAddresses: setting({
    env: "GIG_EGRESS_ALLOW_ADDRESSES",
    default: "",
    allowed: "comma-separated IP addresses or CIDR networks",
    description: "Private or loopback addresses the egress proxy may nevertheless connect to.",
    schema: v.pipe(
      v.string(),
      v.transform((text) => text.split(",").map((item) => item.trim()).filter(Boolean)),
      v.array(v.pipe(v.string(), v.check((item) => { const [address, prefix] = item.split("/"); return isIP(address ?? "") !== 0 && (prefix === undefined || /^\d{1,3}$/.test(prefix)); }))),
    ),
  }),
  registryUrl: setting({
    env: "GIG_REGISTRY_URL",
    default: undefined,
    allowed: "an http(s) URL of index.json, or a file path",
    description: "The signed registry index; its signature is fetched from the same place + .sig.",
    schema: v.pipe(v.string(), v.minLength(1)),
  }),
  registryPublicKeys: setting({
    env: "GIG_REGISTRY_PUBKEY",
    default: "",
    allowed: "comma-separated ed25519 public keys, 64 hex digits each",
    description: "Keys the index signature must verify against (several during a key rotation).",
    schema: v.pipe(
      v.string(),
      v.transform((text) => text.split(",").map((item) => item.trim().toLowerCase()).filter(Boolean)),
      v.array(v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/))),
    ),
  }),
  registryMaxAgeMs: setting({
    env: "GIG_REGISTRY_MAX_AGE",
    default: "30d",
    allowed: "a duration such as 7d, 30d or 720h (at least 1h)",
    description: "An index generated longer ago than this is refused (a frozen mirror).",
    schema: duration(3_600_000),
  }),
  registryToolspecs: setting({
    env: "GIG_REGISTRY_TOOLSPECS",
    default: undefined,
    allowed: "a folder path or http(s) URL laid out as <name>/<version>.toolspec.yaml",
    description: "Where toolspecs are found; toolpack servers then run on the gateway's toolspec engine without pulling an image.",
    schema: v.pipe(v.string(), v.minLength(1)),
  }),
  oidcIssuer: setting({
    env: "GIG_OIDC_ISSUER",
    default: undefined,
    allowed: "the provider's issuer URL (https; http only on loopback)",
    description: "Enables login through this OpenID Connect provider (with GIG_OIDC_CLIENT_ID).",
    schema: httpUrl,
  }),
  oidcClientId: setting({
    env: "GIG_OIDC_CLIENT_ID",
    default: undefined,
    allowed: "the client id registered at the provider",
    description: "OIDC client id; the redirect URI to register is <public URL>/api/v1/oidc/callback.",
    schema: v.pipe(v.string(), v.minLength(1)),
  }),
  oidcClientSecret: setting({
    env: "GIG_OIDC_CLIENT_SECRET",
    default: undefined,
    allowed: "the client secret (omit for a public client using PKCE only)",
    description: "OIDC client secret.",
    schema: v.pipe(v.string(), v.minLength(1)),
  }),
  oidcScopes: setting({
    env: "GIG_OIDC_SCOPES",
    default: "openid email profile",
    allowed: "space-separated scopes including openid",
    description: "Scopes asked of the provider (add the one that releases a groups claim if it has one).",
    schema: v.pipe(v.string(), v.transform((text) => text.split(/\s+/).filter(Boolean)), v.array(v.string()), v.check((scopes) => scopes.includes("openid"))),
  }),
  oidcAllowedDomains: setting({
    env: "GIG_OIDC_ALLOWED_DOMAINS",
    default: "",
    allowed: "comma-separated email domains; empty allows every verified email",
    description: "Only users whose verified email is in one of these domains may log in (and be created).",
    schema: v.pipe(v.string(), v.transform((text) => text.split(",").map((item) => item.trim().toLowerCase()).filter(Boolean))),
  }),
  oidcAdminGroups: setting({
    env: "GIG_OIDC_ADMIN_GROUPS",
    default: "",
    allowed: "comma-separated group names",
    description: "Members of these groups (in the groups claim) are admins; everyone else is a member.",
    schema: v.pipe(v.string(), v.transform((text) => text.split(",").map((item) => item.trim()).filter(Boolean))),
  }),
  oidcGroupsClaim: setting({
    env: "GIG_OIDC_GROUPS_CLAIM",
    default: "groups",
    allowed: "an ID token claim name",
    description: "The ID token claim listing the user's groups.",
    schema: v.pipe(v.string(), v.minLength(1)),
  }),
  rateLimit: setting({
    env: "GIG_RATE_LIMIT",
    default: "1200",
    allowed: "requests per minute, 1-1000000",
    description: "Requests per minute one token (profile or API) or session may make on MCP and the API; bursts up to a minute's worth pass.",
    schema: integerIn({ min: 1, max: 1_000_000 }),
  }),
  rateLimitIp: setting({
    env: "GIG_RATE_LIMIT_IP",
    default: "3000",
    allowed: "requests per minute, 1-1000000",
    description: "Requests per minute from one client address, whatever it presents.",
    schema: integerIn({ min: 1, max: 1_000_000 }),
  }),
  metricsToken: setting({
    env: "GIG_METRICS_TOKEN",
    default: undefined,
    allowed: "a random string of 32-256 characters without spaces, e.g. $(openssl rand -hex 32)",
    description: "Prometheus scrapes /metrics with it as its bearer token; unset, /metrics answers 404.",
    schema: v.pipe(v.string(), v.regex(/^\S{32,256}$/)),
  }),
  otelEndpoint: setting({
    env: "GIG_OTEL_ENDPOINT",
    default: undefined,
    allowed: "the http(s) base URL of an OTLP/HTTP collector, e.g. http://collector:4318",
    description: "Exports OpenTelemetry traces to <URL>/v1/traces (OTLP/HTTP, JSON); unset, nothing is traced.",
    schema: httpUrl,
  }),
  otelHeaders: setting({
    env: "GIG_OTEL_HEADERS",
    default: undefined,
    allowed: "comma-separated name=value pairs, values percent-encoded, e.g. authorization=Bearer%20abc",
    description: "Headers sent with every trace export (the collector's credentials); never logged.",
    schema: headerList,
    secret: true,
  }),
  dashboard: setting({
    env: "GIG_DASHBOARD",
    default: "off",
    allowed: "off or embedded",
    description: "embedded: the gateway serves the dashboard built into its executable at / (one binary, one origin); off: the dashboard runs as its own service.",
    schema: v.picklist(["off", "embedded"]),
  }),
  dashboardDir: setting({
    env: "GIG_DASHBOARD_DIR",
    default: undefined,
    allowed: "the folder of the dashboard's static export (web/out)",
    description: "Serves the dashboard from this folder instead of the embedded copy (development); not together with GIG_DASHBOARD=embedded.",
    schema: v.pipe(v.string(), v.minLength(1)),
  }),
} as const;

type Settings = typeof SETTINGS;
type Parsed = { [K in keyof Settings]: Settings[K] extends Setting<infer T> ? T | undefined : never };

/** Reads every setting from `env`; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = {} as Record<string, unknown>;
  for (const [key, spec] of Object.entries(SETTINGS) as [keyof Settings, Setting<unknown>][]) {
    const raw = env[spec.env] ?? spec.default;
    if (raw === undefined || (raw === "" && spec.default === undefined)) {
      parsed[key] = undefined;
      continue;
    }
    const result = v.safeParse(spec.schema, raw);
    if (!result.success) {
      const shown = spec.secret ? " (value not shown)" : `=${JSON.stringify(redactUrlPassword(raw))}`;
      throw new ConfigError(`${spec.env}${shown} is not valid: expected ${spec.allowed}`);
    }
    parsed[key] = result.output;
  }
  const values = parsed as Parsed;
  const dataDir = resolve(values.dataDir!);
  const dbUrl = values.dbUrl ?? "sqlite:gigmcp.db";
  const dbPath = dbUrl.slice("sqlite:".length);
  return {
    listen: values.listen!,
    proxyPort: values.proxyPort!,
    dataDir,
    dbUrl: dbUrl.startsWith("sqlite:") ? `sqlite:${isAbsolute(dbPath) ? dbPath : join(dataDir, dbPath)}` : dbUrl,
    publicUrl: values.publicUrl,
    allowedOrigins: values.allowedOrigins ?? [],
    logLevel: values.logLevel!,
    idleTimeoutMs: values.idleTimeoutMs!,
    callTimeoutMs: values.callTimeoutMs!,
    sessionIdleTimeoutMs: values.sessionIdleTimeoutMs!,
    sandbox: values.sandbox!,
    sandboxUidBase: values.sandboxUidBase!,
    subnetPool: values.subnetPool!,
    sandboxMemoryBytes: values.sandboxMemoryBytes!,
    sandboxPids: values.sandboxPids!,
    sandboxCpuWeight: values.sandboxCpuWeight!,
    sandboxCgroup: values.sandboxCgroup!,
    masterKey: values.masterKey,
    masterKeyFile: values.masterKeyFile,
    egressDenylistFile: values.egressDenylistFile,
    egressAllowAddresses: values.egressAllowAddresses ?? [],
    registryUrl: values.registryUrl,
    registryPublicKeys: values.registryPublicKeys ?? [],
    registryMaxAgeMs: values.registryMaxAgeMs!,
    registryToolspecs: values.registryToolspecs,
    oidc: oidcConfig(values),
    oauthApps: oauthAppsConfig(env),
    rateLimit: values.rateLimit!,
    rateLimitIp: values.rateLimitIp!,
    metricsToken: values.metricsToken,
    otel: otelConfig(values),
    dashboard: dashboardSource(values),
  };
}

function otelConfig(values: Parsed): OtelConfig | undefined {
  if (!values.otelEndpoint) {
    if (values.otelHeaders) throw new ConfigError("GIG_OTEL_HEADERS is set without GIG_OTEL_ENDPOINT: set the collector's URL too, or unset both");
    return undefined;
  }
  return { endpoint: values.otelEndpoint, headers: values.otelHeaders ?? {} };
}

function dashboardSource(values: Parsed): DashboardSource | undefined {
  if (values.dashboardDir !== undefined && values.dashboard === "embedded") {
    throw new ConfigError("GIG_DASHBOARD=embedded and GIG_DASHBOARD_DIR are both set: set one (the folder replaces the embedded copy)");
  }
  if (values.dashboardDir !== undefined) return { kind: "directory", dir: values.dashboardDir };
  return values.dashboard === "embedded" ? { kind: "embedded" } : undefined;
}

function oidcConfig(values: Parsed): OidcConfig | undefined {
  if (!values.oidcIssuer) return undefined;
  if (!values.oidcClientId) throw new ConfigError("GIG_OIDC_CLIENT_ID is not set: it is required with GIG_OIDC_ISSUER");
  return {
    issuer: values.oidcIssuer.href.replace(/\/$/, ""),
    clientId: values.oidcClientId,
    clientSecret: values.oidcClientSecret,
    scopes: values.oidcScopes!,
    allowedEmailDomains: values.oidcAllowedDomains ?? [],
    adminGroups: values.oidcAdminGroups ?? [],
    groupsClaim: values.oidcGroupsClaim!,
  };
}

/** The base URL printed for clients: GIG_PUBLIC_URL, else the listen address. */
export function publicBaseUrl(config: Config): string {
  if (config.publicUrl) return config.publicUrl.href.replace(/\/$/, "");
  const host = config.listen.host === "" || config.listen.host === "0.0.0.0" || config.listen.host === "::"
    ? "localhost"
    : config.listen.host.includes(":") ? `[${config.listen.host}]` : config.listen.host;
  return `http://${host}:${config.listen.port}`;
}

/**
 * The per-vendor OAuth settings: each name stands for one variable per vendor,
 * <VENDOR> being the vendor's slug in upper case with "_" for "-".
 */
export const OAUTH_APP_SETTINGS = {
  clientId: { env: "GIG_OAUTH_<VENDOR>_CLIENT_ID", allowed: "the client id the vendor issued", description: "Registers the vendor's OAuth app (required for the others)." },
  clientSecretFile: {
    env: "GIG_OAUTH_<VENDOR>_CLIENT_SECRET_FILE",
    allowed: "a file holding the client secret",
    description: "The client secret, read at start; preferred over the inline form.",
  },
  clientSecret: { env: "GIG_OAUTH_<VENDOR>_CLIENT_SECRET", allowed: "the client secret", description: "The client secret inline; omit both for a public client (PKCE only)." },
  authorizeUrl: { env: "GIG_OAUTH_<VENDOR>_AUTHORIZE_URL", allowed: "an https URL (http only on loopback)", description: "Overrides the preset's authorization endpoint." },
  tokenUrl: { env: "GIG_OAUTH_<VENDOR>_TOKEN_URL", allowed: "an https URL (http only on loopback)", description: "Overrides the preset's token endpoint." },
  revokeUrl: {
    env: "GIG_OAUTH_<VENDOR>_REVOKE_URL",
    allowed: "an https URL (http only on loopback)",
    description: "The vendor's RFC 7009 revocation endpoint, told to revoke the tokens on disconnect; overrides the preset's.",
  },
  scopes: { env: "GIG_OAUTH_<VENDOR>_SCOPES", allowed: "space-separated scopes", description: "Asked for on top of the scopes the vendor's servers declare; replaces the preset's (e.g. offline_access)." },
  pkce: { env: "GIG_OAUTH_<VENDOR>_PKCE", allowed: "true or false", description: "Send a PKCE S256 challenge; the preset says, else true." },
} as const;

const OAUTH_VARIABLE = /^GIG_OAUTH_([A-Z0-9]+(?:_[A-Z0-9]+)*?)_(CLIENT_ID|CLIENT_SECRET_FILE|CLIENT_SECRET|AUTHORIZE_URL|TOKEN_URL|REVOKE_URL|SCOPES|PKCE)$/;
const OAUTH_SUFFIXES: Record<string, keyof typeof OAUTH_APP_SETTINGS> = {
  CLIENT_ID: "clientId",
  CLIENT_SECRET_FILE: "clientSecretFile",
  CLIENT_SECRET: "clientSecret",
  AUTHORIZE_URL: "authorizeUrl",
  TOKEN_URL: "tokenUrl",
  REVOKE_URL: "revokeUrl",
  SCOPES: "scopes",
  PKCE: "pkce",
};

function oauthUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name}=${JSON.stringify(value)} is not valid: expected ${OAUTH_APP_SETTINGS.tokenUrl.allowed}`);
  }
  const loopback = url.hostname === "localhost" || url.hostname === "127.0.0.1" || url.hostname === "[::1]";
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new ConfigError(`${name}=${JSON.stringify(value)} is not valid: expected ${OAUTH_APP_SETTINGS.tokenUrl.allowed}`);
  }
  return url.href;
}

/** Every GIG_OAUTH_* variable must be one of the per-vendor settings: a misspelt one stops the gateway rather than being ignored. */
function oauthAppsConfig(env: Record<string, string | undefined>): OAuthAppConfig[] {
  const byVendor = new Map<string, Partial<Record<keyof typeof OAUTH_APP_SETTINGS, string>>>();
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("GIG_OAUTH_") || value === undefined || value === "") continue;
    const match = OAUTH_VARIABLE.exec(name);
    if (!match) {
      throw new ConfigError(`${name} is not a setting: expected GIG_OAUTH_<VENDOR>_ followed by ${Object.keys(OAUTH_SUFFIXES).join(", ")}`);
    }
    const vendor = match[1]!.toLowerCase().replaceAll("_", "-");
    byVendor.set(vendor, { ...byVendor.get(vendor), [OAUTH_SUFFIXES[match[2]!]!]: value });
  }
  return [...byVendor].map(([vendor, values]) => {
    const prefix = `GIG_OAUTH_${vendor.toUpperCase().replaceAll("-", "_")}`;
    if (!values.clientId) throw new ConfigError(`${prefix}_CLIENT_ID is not set: it is required with the other ${prefix}_* settings`);
    if (values.clientSecret !== undefined && values.clientSecretFile !== undefined) {
      throw new ConfigError(`${prefix}_CLIENT_SECRET and ${prefix}_CLIENT_SECRET_FILE are both set: set one`);
    }
    let clientSecret = values.clientSecret;
    if (values.clientSecretFile !== undefined) {
      try {
        clientSecret = readFileSync(values.clientSecretFile, "utf8").trim();
      } catch (error) {
        throw new ConfigError(`${prefix}_CLIENT_SECRET_FILE=${JSON.stringify(values.clientSecretFile)} cannot be read: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
      }
      if (!clientSecret) throw new ConfigError(`${prefix}_CLIENT_SECRET_FILE=${JSON.stringify(values.clientSecretFile)} is empty`);
    }
    if (values.pkce !== undefined && values.pkce !== "true" && values.pkce !== "false") {
      throw new ConfigError(`${prefix}_PKCE=${JSON.stringify(values.pkce)} is not valid: expected ${OAUTH_APP_SETTINGS.pkce.allowed}`);
    }
    const scopes = values.scopes?.split(/[\s,]+/).filter(Boolean);
    if (scopes?.some((scope) => !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(scope))) {
      throw new ConfigError(`${prefix}_SCOPES=${JSON.stringify(values.scopes)} is not valid: expected ${OAUTH_APP_SETTINGS.scopes.allowed}`);
    }
    return {
      vendor,
      clientId: values.clientId,
      clientSecret,
      authorizeUrl: values.authorizeUrl === undefined ? undefined : oauthUrl(`${prefix}_AUTHORIZE_URL`, values.authorizeUrl),
      tokenUrl: values.tokenUrl === undefined ? undefined : oauthUrl(`${prefix}_TOKEN_URL`, values.tokenUrl),
      revokeUrl: values.revokeUrl === undefined ? undefined : oauthUrl(`${prefix}_REVOKE_URL`, values.revokeUrl),
      scopes,
      pkce: values.pkce === undefined ? undefined : values.pkce === "true",
    };
  });
}
