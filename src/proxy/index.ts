/**
 * The egress proxy: the only way out of a sandbox. A sandboxed server asks
 * for a tunnel with CONNECT host:port; the proxy knows the server by the
 * connection's source address, checks the host against the denylist, the
 * server's allowlist and anti-SSRF rules, then terminates TLS with a
 * certificate from the runtime CA that sandboxes trust. Inside the tunnel it
 * reads each HTTP/1.1 request, swaps credential placeholders for real secrets
 * in the one header where each belongs, refuses placeholders anywhere else,
 * and forwards to the real host over verified TLS. Every decision is audited.
 */
import { lookup } from "node:dns/promises";
import { createServer, type Server, type Socket } from "node:net";
import { createSecureContext, getCACertificates } from "node:tls";
import type { Logger } from "../log/index.ts";
import { parseAllowList } from "./addresses.ts";
import type { CertificateAuthority } from "./authority.ts";
import { createDenylistMatcher } from "./hosts.ts";
import { createLeafCache } from "./leaves.ts";
import { Tunnel, type ProxyContext } from "./tunnel.ts";

export { createCertificateAuthority, loadCertificateAuthority, type CertificateAuthority, type IssuedCertificate } from "./authority.ts";
export { isForbiddenAddress } from "./addresses.ts";
export { isValidEgressEntry, loadDenylist, matchesEgress } from "./hosts.ts";

/** Whose sandbox a connection comes from. */
export interface EgressIdentity {
  serverId: string;
  serverName: string;
  tenantId: string;
}

/** A credential the proxy injects for a server, in place of the placeholder the server holds. */
export interface CredentialBinding {
  credentialId: string;
  /** `gigph-` + 32 lowercase hex: what the sandboxed server holds instead of the credential. */
  placeholder: string;
  /** The one header the credential may travel in, e.g. "Authorization" (any case). */
  header: string;
  /** The header's value, with {token} standing for the secret, e.g. "Bearer {token}". */
  format: string;
  /**
   * Egress entries (same syntax as the allowlist) the credential may be sent
   * to; absent means every host the server may reach.
   */
  hosts?: string[];
  /** The real value for {token}, used as is (a Basic credential is already base64). May throw: the request is then refused. */
  secret(): Promise<string>;
}

export interface EgressPolicy {
  /** Allowlist entries: `api.example.com`, `*.example.com`, `**.example.com`, each optionally `:PORT` (default 443). */
  egress: string[];
  credentials: CredentialBinding[];
}

export interface EgressAuditEvent {
  time: number;
  decision: "allow" | "deny" | "inject";
  reason: string;
  sourceIp: string;
  serverId?: string;
  serverName?: string;
  tenantId?: string;
  host?: string;
  port?: number;
  method?: string;
  /** Request path with query values removed, parameter names kept: /v1/x?key=&q= */
  path?: string;
  status?: number;
  /** Bytes received from the upstream (response heads and bodies). */
  bytesIn?: number;
  /** Bytes sent to the upstream (request heads and bodies). */
  bytesOut?: number;
  latencyMs?: number;
  /** The credential(s) injected, comma-separated if more than one. */
  credentialId?: string;
}

export interface ProxyLimits {
  /** Largest CONNECT, request or response head. */
  maxHeadBytes: number;
  /** Open tunnels one identity may hold; one more is answered 429. */
  maxTunnelsPerIdentity: number;
  /** Time for a complete CONNECT or request head once it started, and for TLS handshakes (slow clients). */
  headTimeoutMs: number;
  /** Longest silence: between requests in a tunnel, and while a request or response is under way. */
  idleTimeoutMs: number;
  /** Time to resolve the host and to open the upstream connection (TCP and TLS). */
  connectTimeoutMs: number;
  /** Hosts whose leaf certificate is kept ready. */
  leafCacheSize: number;
  leafValidityMs: number;
}

export const DEFAULT_LIMITS: ProxyLimits = {
  maxHeadBytes: 64 * 1024,
  maxTunnelsPerIdentity: 64,
  headTimeoutMs: 15_000,
  idleTimeoutMs: 120_000,
  connectTimeoutMs: 10_000,
  leafCacheSize: 1000,
  leafValidityMs: 7 * 24 * 3600_000,
};

export interface ProxyOptions {
  /** Who is connecting: source address of the TCP connection, and the local address it reached. */
  identify(sourceIp: string, localIp: string): EgressIdentity | undefined;
  /** Read once per tunnel, when it opens. */
  policy(identity: EgressIdentity): Promise<EgressPolicy>;
  ca: CertificateAuthority;
  /** Domains refused for everyone: a host is denied if it is one of them or below one. Overrides allowlists. */
  denylist: string[];
  /** IPs or CIDRs exempt from the anti-SSRF rules (operator setting). */
  allowAddresses: string[];
  /** Resolves a host to its addresses; default: the system resolver (A and AAAA). */
  resolve?(host: string): Promise<string[]>;
  /** Extra PEM roots trusted for upstream TLS, on top of the runtime's default roots (Mozilla's and the system's). */
  upstreamCaCertificates?: string[];
  limits?: Partial<ProxyLimits>;
  audit(event: EgressAuditEvent): void;
  log: Logger;
}

export interface EgressProxy {
  /** Starts listening on address:port (one call per sandbox host-side address). Returns the bound port. */
  listen(address: string, port: number): Promise<number>;
  /** Stops listening on `address` and closes the tunnels accepted there. */
  unlisten(address: string): Promise<void>;
  /** Stops every listener and closes every tunnel. */
  stop(): Promise<void>;
  /** Open tunnels and cached leaf certificates (diagnostics and tests). */
  stats(): { tunnels: number; cachedCertificates: number };
}

interface Listener {
  server: Server;
  tunnels: Set<Tunnel>;
}

export function createEgressProxy(options: ProxyOptions): EgressProxy {
  const limits: ProxyLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const leaves = createLeafCache(options.ca, { capacity: limits.leafCacheSize, validityMs: limits.leafValidityMs });
  const extraRoots = options.upstreamCaCertificates ?? [];
  const context: ProxyContext = {
    options,
    limits,
    allowAddresses: parseAllowList(options.allowAddresses),
    denylisted: createDenylistMatcher(options.denylist),
    leaves,
    // Built once: parsing a few hundred roots per connection would dominate its cost.
    upstreamTls: createSecureContext({ ca: [...getCACertificates("default"), ...extraRoots] }),
    resolve: options.resolve ?? resolveWithSystem,
    tunnelsPerIdentity: new Map(),
  };
  const listeners = new Map<string, Listener>();

  async function listen(address: string, port: number): Promise<number> {
    if (listeners.has(address)) throw new Error(`the egress proxy already listens on ${address}: unlisten it first`);
    // Half-open: a client may finish sending (FIN) and still be owed its response.
    const listener: Listener = { server: createServer({ noDelay: true, allowHalfOpen: true }), tunnels: new Set() };
    listener.server.on("connection", (socket: Socket) => {
      const tunnel = new Tunnel(socket, context);
      listener.tunnels.add(tunnel);
      tunnel.run().finally(() => listener.tunnels.delete(tunnel));
    });
    listeners.set(address, listener);
    try {
      await new Promise<void>((resolve, reject) => {
        listener.server.once("error", reject);
        listener.server.listen({ host: address, port, exclusive: true }, () => {
          listener.server.off("error", reject);
          resolve();
        });
      });
    } catch (error) {
      listeners.delete(address);
      throw new Error(`the egress proxy cannot listen on ${address}:${port}: ${(error as Error).message}`);
    }
    listener.server.on("error", (error) => options.log.error("egress proxy listener failed", { address, error }));
    const bound = listener.server.address();
    return typeof bound === "object" && bound ? bound.port : port;
  }

  async function unlisten(address: string): Promise<void> {
    const listener = listeners.get(address);
    if (!listener) return;
    listeners.delete(address);
    const closed = new Promise<void>((resolve) => listener.server.close(() => resolve()));
    for (const tunnel of listener.tunnels) tunnel.close();
    await closed;
  }

  async function stop(): Promise<void> {
    await Promise.all([...listeners.keys()].map(unlisten));
  }

  function stats() {
    let tunnels = 0;
    for (const listener of listeners.values()) tunnels += listener.tunnels.size;
    return { tunnels, cachedCertificates: leaves.size };
  }

  return { listen, unlisten, stop, stats };
}

async function resolveWithSystem(host: string): Promise<string[]> {
  const answers = await lookup(host, { all: true, order: "verbatim" });
  return answers.map((answer) => answer.address);
}
