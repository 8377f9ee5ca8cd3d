/**
 * How credentials reach backends (src/cli/egress.ts): placeholders for sealed
 * servers, secrets for entrusted ones, and OAuth access tokens refreshed by
 * the gateway — once, however many requests wait for it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { startEgress, type Egress } from "../src/cli/egress.ts";
import { loadConfig } from "../src/config/index.ts";
import { createLogger } from "../src/log/index.ts";
import { openStore, type Server, type ServerSpec, type Store } from "../src/store/index.ts";
import { openCredential, openVault, sealCredential, type Vault } from "../src/vault/index.ts";
import { tempDir } from "./helpers/gateway.ts";

let dataDir: string;
let store: Store;
let vault: Vault;
let egress: Egress;
let tenantId: string;
let tokenEndpoint: ReturnType<typeof Bun.serve>;
let refreshes = 0;

const spec = (name: string, extra: Partial<ServerSpec>): ServerSpec => ({
  name, kind: "stdio", command: "/bin/cat", args: [], env: {}, egress: ["api.example.com"], roPaths: [], tier: "sealed", timeoutMs: null, limits: null, credentials: [], ...extra,
});

beforeAll(async () => {
  dataDir = tempDir();
  const config = loadConfig({ GIG_DATA_DIR: dataDir, GIG_SANDBOX: "off", GIG_LOG_LEVEL: "error" });
  store = await openStore(config.dbUrl);
  vault = openVault(config, () => {}).vault;
  tenantId = (await store.users.create({ email: "owner@test", role: "admin" })).id;
  tokenEndpoint = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const form = new URLSearchParams(await request.text());
      if (form.get("grant_type") !== "refresh_token" || form.get("refresh_token") !== "refresh-1") return Response.json({ error: "invalid_grant" }, { status: 400 });
      refreshes++;
      await Bun.sleep(50);
      return Response.json({ access_token: `access-${refreshes + 1}`, token_type: "Bearer", expires_in: 3600, refresh_token: "refresh-2" });
    },
  });
  egress = await startEgress({ config, store, log: createLogger("error"), identify: () => undefined });
});

afterAll(async () => {
  await egress?.stop();
  tokenEndpoint?.stop(true);
  store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function setSecret(server: Server, credentialId: string, secret: Parameters<typeof sealCredential>[2]) {
  const key = { serverName: server.name, credentialId, tenantId };
  await store.credentials.set({ ...key, type: secret.type, sealed: sealCredential(vault, key, secret) });
}

test("a sealed server gets its stable placeholder, never the secret", async () => {
  const server = await store.servers.create(
    spec("sealed", { credentials: [{ id: "key", type: "api_key", header: "Authorization", format: "Bearer {token}", env: "API_KEY" }] }),
  );
  await setSecret(server, "key", { type: "api_key", key: "the-real-key" });
  const env = await egress.credentialEnvironment(server, tenantId);
  expect(env).toEqual({ API_KEY: await store.placeholders.getOrCreate("sealed", "key", tenantId) });
  expect(env.API_KEY).toMatch(/^gigph-[0-9a-f]{32}$/);
  expect(await egress.credentialEnvironment(server, tenantId)).toEqual(env);
});

test("an entrusted server gets the secret itself; a missing one is a clear error naming the command", async () => {
  const server = await store.servers.create(
    spec("entrusted", { tier: "entrusted", credentials: [{ id: "login", type: "basic", env: "LOGIN" }] }),
  );
  await expect(egress.credentialEnvironment(server, tenantId)).rejects.toThrow("gigmcp credential set entrusted login");
  await setSecret(server, "login", { type: "basic", user: "ada", password: "pa:ss" });
  expect(await egress.credentialEnvironment(server, tenantId)).toEqual({ LOGIN: "ada:pa:ss" });
});

test("an expiring OAuth token is refreshed once for concurrent users, and the new tokens are sealed back", async () => {
  const server = await store.servers.create(spec("oauth", { tier: "entrusted", credentials: [{ id: "oauth", type: "oauth2", env: "ACCESS_TOKEN" }] }));
  await setSecret(server, "oauth", {
    type: "oauth2",
    accessToken: "access-1",
    refreshToken: "refresh-1",
    expiresAt: Date.now() + 5_000,
    tokenUrl: `http://127.0.0.1:${tokenEndpoint.port}/token`,
    clientId: "gigmcp",
  });
  const results = await Promise.all(Array.from({ length: 5 }, () => egress.credentialEnvironment(server, tenantId)));
  expect(results).toEqual(Array(5).fill({ ACCESS_TOKEN: "access-2" }));
  expect(refreshes).toBe(1);
  const stored = openCredential(vault, (await store.credentials.get("oauth", "oauth", tenantId))!);
  expect(stored).toMatchObject({ type: "oauth2", accessToken: "access-2", refreshToken: "refresh-2" });
  expect((stored as { expiresAt: number }).expiresAt).toBeGreaterThan(Date.now() + 3_000_000);
  expect(await egress.credentialEnvironment(server, tenantId)).toEqual({ ACCESS_TOKEN: "access-2" });
  expect(refreshes).toBe(1);
});

test("a refused refresh is an error that says what to do and carries no token", async () => {
  const server = await store.servers.create(spec("revoked", { tier: "entrusted", credentials: [{ id: "oauth", type: "oauth2", env: "ACCESS_TOKEN" }] }));
  await setSecret(server, "oauth", {
    type: "oauth2",
    accessToken: "stale-access",
    refreshToken: "revoked-refresh",
    expiresAt: Date.now() - 1,
    tokenUrl: `http://127.0.0.1:${tokenEndpoint.port}/token`,
  });
  const error = (await egress.credentialEnvironment(server, tenantId).catch((caught: unknown) => caught)) as Error;
  expect(error.message).toContain("was refused (HTTP 400)");
  expect(error.message).toContain("set the credential again");
  expect(error.message).not.toContain("revoked-refresh");
  expect(error.message).not.toContain("stale-access");
});
