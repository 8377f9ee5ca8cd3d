/**
 * What the egress tests share: an HTTPS API on loopback that the proxy reaches as `api.test`, the
 * settings of a sandboxed test gateway, and the bundled fetch server as a sealed backend whose
 * credential the proxy injects.
 */
import type { CredentialSpec } from "../../src/store/index.ts";
import { openVault, sealCredential } from "../../src/vault/index.ts";
import type { TestGateway } from "../helpers/gateway.ts";
import { createTestPki } from "../helpers/https-upstream.ts";

export interface TestApi {
  server: ReturnType<typeof Bun.serve>;
  /** The allowlist entry that reaches it: `api.test:PORT`. */
  egress: string;
  /** The proxy options that resolve *.test to loopback and trust the API's test CA. */
  proxy: { resolve: (host: string) => Promise<string[]>; upstreamCaCertificates: string[] };
}

/** Starts the API (inside the test's own network namespace, on its loopback). */
export function startTestApi(fetch: (request: Request) => Response | Promise<Response>): TestApi {
  Bun.spawnSync(["ip", "link", "set", "lo", "up"]);
  const pki = createTestPki();
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: { key: pki.keyPem, cert: pki.certPem }, fetch });
  return {
    server,
    egress: `api.test:${server.port}`,
    proxy: { resolve: async (host) => (host.endsWith(".test") ? ["127.0.0.1"] : []), upstreamCaCertificates: [pki.caPem] },
  };
}

/** Settings of a sandboxed test gateway; each test file picks its own uids, cgroup and proxy port. */
export function sandboxSettings(name: string, uidBase: number, proxyPort: number): Record<string, string> {
  return {
    GIG_SANDBOX: "bwrap",
    GIG_PROXY_PORT: String(proxyPort),
    GIG_SANDBOX_UID_BASE: String(uidBase),
    GIG_SANDBOX_CGROUP: `gigmcp-${name}-${process.pid}`,
    // The test API lives on loopback, which the proxy refuses unless the operator allows it.
    GIG_EGRESS_ALLOW_ADDRESSES: "127.0.0.1",
  };
}

/** Installs `fetch` allowed to reach `egress` only, with one credential the proxy injects as a bearer token. */
export async function addFetch(gateway: TestGateway, egress: string, credential: Omit<CredentialSpec, "header" | "format" | "env">): Promise<void> {
  await gateway.store.servers.upsert({
    name: "fetch",
    kind: "builtin",
    command: "fetch",
    args: [],
    env: {},
    egress: [egress],
    roPaths: [],
    tier: "sealed",
    timeoutMs: null,
    limits: null,
    credentials: [{ ...credential, header: "Authorization", format: "Bearer {token}", env: "FETCH_BEARER_TOKEN" }],
  });
}

/** `fetch` with an API key: `secret` sealed as the admin's. */
export async function addKeyedFetch(gateway: TestGateway, egress: string, secret: string): Promise<void> {
  await addFetch(gateway, egress, { id: "token", type: "api_key" });
  const { vault } = openVault({ dataDir: gateway.dataDir, masterKey: undefined, masterKeyFile: undefined }, () => {});
  const key = { serverName: "fetch", credentialId: "token", tenantId: gateway.admin.id };
  await gateway.store.credentials.set({ ...key, type: "api_key", sealed: sealCredential(vault, key, { type: "api_key", key: secret }) });
}
