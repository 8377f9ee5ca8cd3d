/** The bundled fetch server as a sealed backend with an API key the proxy injects: shared by the egress tests. */
import { openVault, sealCredential } from "../../src/vault/index.ts";
import type { TestGateway } from "../helpers/gateway.ts";

/** Installs `fetch` allowed to reach `egress` only, with `secret` sealed as the admin's bearer token. */
export async function addKeyedFetch(gateway: TestGateway, egress: string, secret: string): Promise<void> {
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
    credentials: [{ id: "token", type: "api_key", header: "Authorization", format: "Bearer {token}", env: "FETCH_BEARER_TOKEN" }],
  });
  const { vault } = openVault({ dataDir: gateway.dataDir, masterKey: undefined, masterKeyFile: undefined }, () => {});
  const key = { serverName: "fetch", credentialId: "token", tenantId: gateway.admin.id };
  await gateway.store.credentials.set({ ...key, type: "api_key", sealed: sealCredential(vault, key, { type: "api_key", key: secret }) });
}
