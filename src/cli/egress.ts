/**
 * Wires the egress side together: the vault, the proxy's runtime CA (its key
 * sealed in the store), the proxy itself with each server's allowlist and
 * credential bindings, the audit sink, and the variables that carry
 * placeholders (sealed) or secrets (entrusted) into backends.
 */
import { readFileSync } from "node:fs";
import type { Config } from "../config/index.ts";
import type { Logger, RequestScope } from "../log/index.ts";
import {
  createCertificateAuthority,
  createEgressProxy,
  loadCertificateAuthority,
  loadDenylist,
  type CertificateAuthority,
  type CredentialBinding,
  type EgressAuditEvent,
  type EgressIdentity,
  type EgressPolicy,
  type EgressProxy,
} from "../proxy/index.ts";
import builtinDenylist from "../proxy/exfil-denylist.txt" with { type: "text" };
import { AuditQueue, type CredentialSpec, type Server, type Store } from "../store/index.ts";
import { startSpan, TRACE_ATTR } from "../tracing/index.ts";
import { createConnections, refreshCredential, type OAuthConnections } from "../oauth/index.ts";
import { blobContext, chainAudit, openCredential, openVault, sealCredential, type CredentialSecret, type Vault } from "../vault/index.ts";

const CA_BLOB = "egress-proxy-ca";
/** An OAuth access token this close to expiry is refreshed before it is injected. */
const REFRESH_MARGIN_MS = 60_000;

export interface Egress {
  proxy: EgressProxy;
  /** The vault it opened; the REST API seals credentials with the same one. */
  vault: Vault;
  caCertificatePem: string;
  /** Placeholders for sealed servers, secrets for entrusted ones, by the variable names servers declare. */
  credentialEnvironment(server: Server, tenantId: string): Promise<Record<string, string>>;
  /** Tenants' OAuth connections, which supply oauth2 credentials that name a vendor. */
  connections: OAuthConnections;
  /** Why the server's OAuth connections cannot serve a call now (checked before each tools/call), or undefined. */
  credentialProblem(server: Server, tenantId: string): Promise<string | undefined>;
  /** False once stopped: readiness of the gateway. */
  running(): boolean;
  stop(): Promise<void>;
}

export interface EgressOptions {
  config: Config;
  store: Store;
  log: Logger;
  /** The sandbox a source address belongs to (the network manager's registry). */
  identify(sourceIp: string): EgressIdentity | undefined;
  /** The HTTP requests whose calls that server's backend of that tenant is serving now. */
  requestsOf?(serverId: string, tenantId: string): readonly RequestScope[];
  /** For tests: a resolver for their own names, and their upstreams' CA. */
  resolve?(host: string): Promise<string[]>;
  upstreamCaCertificates?: string[];
}

export async function startEgress(options: EgressOptions): Promise<Egress> {
  const { config, store, log } = options;
  const { vault } = openVault(config, (message) => log.warn(message));
  await chainAudit(store, vault);
  const ca = await runtimeAuthority(store, vault);
  const denylist = loadDenylist(`${builtinDenylist}\n${config.egressDenylistFile ? readFileSync(config.egressDenylistFile, "utf8") : ""}`);
  const connections = createConnections({ config, store, vault, log: log.child({ component: "oauth" }) });
  const credentials = new CredentialSource(store, vault, connections, log);
  const egressAudit = new AuditQueue(store.audit, (error, lost) => log.error("could not store egress audit events", { error, lost }));

  const proxy = createEgressProxy({
    identify: (sourceIp, localIp) => {
      const identity = options.identify(sourceIp);
      // The connection must also arrive on the sandbox's own host-side address.
      return identity && localIp === hostSideOf(sourceIp) ? identity : undefined;
    },
    policy: async (identity) => policyFor(identity, store, credentials),
    ca: ca.authority,
    denylist,
    allowAddresses: config.egressAllowAddresses,
    resolve: options.resolve,
    upstreamCaCertificates: options.upstreamCaCertificates,
    audit: (event) => {
      const requests = (event.serverId && event.tenantId && options.requestsOf?.(event.serverId, event.tenantId)) || [];
      traceEgress(event, requests);
      const requestIds = requests.map((request) => request.requestId);
      recordEgress(requestIds.length ? { ...event, requestIds } : event, egressAudit);
    },
    log: log.child({ component: "proxy" }),
  });

  let stopped = false;
  return {
    proxy,
    vault,
    caCertificatePem: ca.authority.certificatePem,
    credentialEnvironment: (server, tenantId) => credentials.environment(server, tenantId),
    connections,
    credentialProblem: (server, tenantId) =>
      connections.problem(server, tenantId, async (credentialId) => (await store.credentials.get(server.name, credentialId, tenantId)) !== undefined),
    running: () => !stopped,
    stop: async () => {
      stopped = true;
      await proxy.stop();
      await egressAudit.flush();
    },
  };
}

/** The host side of a sandbox's /30 is the address just below the sandbox's own. */
function hostSideOf(sandboxIp: string): string {
  const plain = sandboxIp.replace(/^::ffff:/, "");
  const octets = plain.split(".").map(Number);
  octets[3] = octets[3]! - 1;
  return octets.join(".");
}

/** The proxy's CA: created once, its private key sealed in the store, so clients keep trusting it across restarts. */
async function runtimeAuthority(store: Store, vault: Vault): Promise<{ authority: CertificateAuthority }> {
  const context = blobContext(CA_BLOB);
  const stored = await store.sealedBlobs.get(CA_BLOB);
  if (stored) {
    const { certificatePem, privateKey } = JSON.parse(new TextDecoder().decode(vault.open(stored.sealed, context))) as { certificatePem: string; privateKey: string };
    return { authority: await loadCertificateAuthority(certificatePem, Buffer.from(privateKey, "base64")) };
  }
  const { authority, privateKeyPkcs8 } = await createCertificateAuthority({ commonName: "Gig'MCP egress proxy" });
  const plaintext = new TextEncoder().encode(JSON.stringify({ certificatePem: authority.certificatePem, privateKey: Buffer.from(privateKeyPkcs8).toString("base64") }));
  await store.sealedBlobs.put(CA_BLOB, vault.seal(plaintext, context));
  plaintext.fill(0);
  return { authority };
}

async function policyFor(identity: EgressIdentity, store: Store, credentials: CredentialSource): Promise<EgressPolicy> {
  const server = await store.servers.get(identity.serverName).catch(() => undefined);
  // A server removed or replaced since its sandbox started gets nothing.
  if (!server || server.id !== identity.serverId) return { egress: [], credentials: [] };
  const bindings: CredentialBinding[] = [];
  if (server.tier === "sealed") {
    for (const spec of server.credentials) {
      if (!spec.header || !spec.format) continue;
      bindings.push({
        credentialId: spec.id,
        placeholder: await store.placeholders.getOrCreate(server.name, spec.id, identity.tenantId),
        header: spec.header,
        format: spec.format,
        secret: () => credentials.token(server.name, spec, identity.tenantId),
      });
    }
  }
  return { egress: server.egress, credentials: bindings };
}

/** One span per decision, on behalf of the requests being served (never the path or its query). */
function traceEgress(event: EgressAuditEvent, requests: readonly RequestScope[]): void {
  startSpan(
    "egress",
    {
      [TRACE_ATTR.decision]: event.decision,
      [TRACE_ATTR.reason]: event.reason,
      ...(event.serverName !== undefined && { [TRACE_ATTR.server]: event.serverName }),
      ...(event.host !== undefined && { [TRACE_ATTR.host]: event.host, [TRACE_ATTR.port]: event.port }),
    },
    requests,
  ).end();
}

/**
 * `requestIds`: the requests whose calls the sandbox was serving when the
 * decision was made. A backend serves its calls concurrently over one
 * connection, so when several are in flight the proxy cannot tell which one
 * caused this request: all their ids are recorded, never a guess at one.
 * Egress between calls (a server's own background work) carries none.
 */
function recordEgress(event: EgressAuditEvent & { requestIds?: readonly string[] }, audit: AuditQueue): void {
  const { decision, tenantId, serverName, time, ...detail } = event;
  // One JSON line per decision on stdout (the audit stream), and the same in the store.
  process.stdout.write(`${JSON.stringify({ audit: "egress", time: new Date(time).toISOString(), decision, serverName, tenantId, ...detail })}\n`);
  audit.add({ action: "egress", decision, actor: serverName ?? null, tenantId: tenantId ?? null, detail, time });
}

/**
 * Credential values for injection and for entrusted servers' environments, with OAuth refresh:
 * a value set for the server, else for an oauth2 credential naming a vendor the tenant's connection.
 */
class CredentialSource {
  private readonly refreshing = new Map<string, Promise<CredentialSecret>>();

  constructor(
    private readonly store: Store,
    private readonly vault: Vault,
    private readonly connections: OAuthConnections,
    private readonly log: Logger,
  ) {}

  async environment(server: Server, tenantId: string): Promise<Record<string, string>> {
    const env: Record<string, string> = {};
    for (const spec of server.credentials) {
      if (!spec.env) continue;
      env[spec.env] =
        server.tier === "sealed"
          ? await this.store.placeholders.getOrCreate(server.name, spec.id, tenantId)
          : envValue(await this.secret(server.name, spec, tenantId));
    }
    return env;
  }

  /** The value that replaces {token} in the header format. */
  async token(serverName: string, spec: CredentialSpec, tenantId: string): Promise<string> {
    const secret = await this.secret(serverName, spec, tenantId);
    if (secret.type === "basic") return Buffer.from(`${secret.user}:${secret.password}`).toString("base64");
    return secret.type === "api_key" ? secret.key : secret.accessToken;
  }

  private async secret(serverName: string, spec: CredentialSpec, tenantId: string): Promise<CredentialSecret> {
    const record = await this.store.credentials.get(serverName, spec.id, tenantId);
    if (!record && spec.type === "oauth2" && spec.vendor !== undefined) {
      return { type: "oauth2", accessToken: await this.connections.accessToken(spec.vendor, tenantId) };
    }
    if (!record) throw new Error(`credential ${serverName}/${spec.id} is not set for this tenant: gigmcp credential set ${serverName} ${spec.id}`);
    const secret = openCredential(this.vault, record);
    if (secret.type !== "oauth2" || secret.expiresAt === undefined || secret.expiresAt - Date.now() > REFRESH_MARGIN_MS) return secret;
    return this.refreshOnce(`${serverName}/${spec.id}/${tenantId}`, async () => {
      const fresh = await refreshCredential(secret);
      const key = { serverName, credentialId: spec.id, tenantId };
      await this.store.credentials.set({ ...key, type: "oauth2", sealed: sealCredential(this.vault, key, fresh) });
      this.log.info("refreshed an OAuth access token", { server: serverName, credential: spec.id });
      return fresh;
    });
  }

  /** One refresh at a time per credential: concurrent requests share it. */
  private refreshOnce(key: string, refresh: () => Promise<CredentialSecret>): Promise<CredentialSecret> {
    const running = this.refreshing.get(key);
    if (running) return running;
    const started = refresh().finally(() => this.refreshing.delete(key));
    this.refreshing.set(key, started);
    return started;
  }
}

/** How an entrusted server receives its secret: the key, `user:password`, or the access token. */
function envValue(secret: CredentialSecret): string {
  if (secret.type === "basic") return `${secret.user}:${secret.password}`;
  return secret.type === "api_key" ? secret.key : secret.accessToken;
}
