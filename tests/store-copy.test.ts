/**
 * `gigmcp db copy` from SQLite into the test database (Postgres in the
 * postgres suite, another SQLite file otherwise), through the real CLI.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { openStore, type Store } from "../src/store/index.ts";
import { latestMigration } from "../src/store/migrations.ts";
import { blobContext, createVault, oauthAppContext, oauthConnectionContext, openCredential, parseKeyringList, sealCredential } from "../src/vault/index.ts";
import { testDatabase, type TestDatabase } from "./helpers/database.ts";
import { BUN, MAIN, tempDir } from "./helpers/gateway.ts";

const masterKey = () => `k1:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;
const MASTER_KEY = masterKey();
const vault = createVault(parseKeyringList(MASTER_KEY));

let dir: string;
let source: string;
let target: TestDatabase;

function gigmcp(args: string[], key = MASTER_KEY) {
  const result = Bun.spawnSync([BUN, MAIN, ...args], { env: { PATH: process.env.PATH!, GIG_DATA_DIR: dir, GIG_MASTER_KEY: key, GIG_LOG_LEVEL: "error" } });
  return { code: result.exitCode, out: result.stdout.toString(), err: result.stderr.toString() };
}

/** Users, a profile with a server and a token, a sealed credential and blob, sessions, API tokens and audit events. */
async function fill(store: Store): Promise<{ token: string }> {
  const admin = await store.users.create({ email: "admin@example.com", role: "admin", passwordHash: "hash" });
  const member = await store.users.create({ email: "member@example.com", role: "member" });
  await store.servers.create({
    name: "github", kind: "stdio", command: "/bin/cat", args: ["-u"], env: { A: "b" }, egress: ["api.github.com"], roPaths: [], tier: "sealed",
    timeoutMs: 5000, limits: { pids: 10 }, credentials: [{ id: "token", type: "api_key", header: "Authorization", format: "Bearer {token}" }],
  });
  const profile = await store.profiles.create(admin.id, "work", { prefixTools: false });
  await store.profiles.addServer(profile.id, "github", ["search"]);
  const { token } = await store.tokens.create(profile.id, "ci");
  for (const tenant of [admin, member]) {
    const key = { serverName: "github", credentialId: "token", tenantId: tenant.id };
    await store.credentials.set({ ...key, type: "api_key", sealed: sealCredential(vault, key, { type: "api_key", key: `secret-${tenant.email}` }) });
    await store.placeholders.getOrCreate("github", "token", tenant.id);
  }
  await store.sealedBlobs.put("proxy-ca", vault.seal(new TextEncoder().encode("ca key"), blobContext("proxy-ca")));
  await store.oauthApps.set({ vendor: "google", clientId: "g", authorizeUrl: null, tokenUrl: null, revokeUrl: null, scopes: null, pkce: null, clientSecret: vault.seal(new TextEncoder().encode("app secret"), oauthAppContext("google")) });
  await store.oauthConnections.set({
    vendor: "google", tenantId: member.id, status: "connected", scopes: ["drive"], expiresAt: null, problem: null,
    sealed: vault.seal(new TextEncoder().encode('{"accessToken":"a"}'), oauthConnectionContext("google", member.id)),
  });
  const now = Date.now();
  await store.sessions.create({ idHash: "s1", userId: admin.id, csrfHash: "c1", createdAt: now, lastSeenAt: now, idleExpiresAt: now + 1000, absoluteExpiresAt: now + 2000 });
  await store.apiTokens.create({ id: "t1", userId: admin.id, prefix: "gigapi_x", label: "ci", scopes: ["read", "write"], createdAt: now, expiresAt: now + 1000, lastUsedAt: null, tokenHash: "h1" });
  for (const decision of ["allow", "deny", "inject"] as const) await store.audit.record({ action: "tool.call", decision, actor: "github", tenantId: admin.id, detail: { n: 1 } });
  return { token };
}

beforeEach(async () => {
  dir = tempDir();
  source = `sqlite:${join(dir, "source.db")}`;
  target = await testDatabase(dir, "target.db");
});

afterEach(async () => {
  await target.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe("db copy", () => {
  test("moves every row; the copy works, counts match and every secret opens", async () => {
    const original = await openStore(source);
    const { token } = await fill(original);
    original.close();

    const copy = gigmcp(["db", "copy", "--from", source, "--to", target.url]);
    expect(copy.err).toBe("");
    // users 2, servers 1, profiles 1, profile_servers 1, profile_tokens 1, credentials 2, placeholders 2, sealed_blobs 1,
    // sessions 1, api_tokens 1, oauth_apps 1, oauth_connections 1, oauth_flows 0, audit_events 3, audit_head 0, meta 1.
    expect(copy.out).toMatch(/^copied 19 rows in 16 tables, verified/);
    expect(copy.code).toBe(0);

    const copied = await openStore(target.url);
    try {
      const grant = await copied.tokens.resolve(token);
      expect(grant?.profile.name).toBe("work");
      expect(grant?.profile.prefixTools).toBe(false);
      const [member] = await copied.profiles.members(grant!.profile.id);
      expect(member).toMatchObject({ tools: ["search"], server: { args: ["-u"], env: { A: "b" }, limits: { pids: 10 }, timeoutMs: 5000 } });
      const admin = (await copied.users.byEmail("admin@example.com"))!;
      expect(openCredential(vault, (await copied.credentials.get("github", "token", admin.id))!)).toEqual({ type: "api_key", key: "secret-admin@example.com" });
      const memberId = (await copied.users.byEmail("member@example.com"))!.id;
      const connection = (await copied.oauthConnections.get("google", memberId))!;
      expect(new TextDecoder().decode(vault.open(connection.sealed, oauthConnectionContext("google", memberId)))).toBe('{"accessToken":"a"}');
      expect((await copied.users.withPasswordHash("admin@example.com"))?.passwordHash).toBe("hash");
      expect((await copied.apiTokens.byHash("h1"))?.token.scopes).toEqual(["read", "write"]);
      expect(await copied.revision()).toBeGreaterThan(0);
      // New rows continue after the copied ids.
      const events = await copied.audit.list();
      expect((await copied.audit.record({ action: "after", decision: "allow" })).id).toBe(Math.max(...events.map((event) => event.id)) + 1);
    } finally {
      copied.close();
    }
  });

  test("a target that holds rows is refused and left as it was", async () => {
    const original = await openStore(source);
    await fill(original);
    original.close();
    const occupied = await openStore(target.url);
    await occupied.users.create({ email: "someone@example.com", role: "admin" });
    occupied.close();
    const copy = gigmcp(["db", "copy", "--from", source, "--to", target.url]);
    expect(copy.code).toBe(1);
    expect(copy.err).toContain("is not empty (users: 1 rows, meta: 1 rows)");
    const after = await openStore(target.url);
    expect((await after.users.list()).map((user) => user.email)).toEqual(["someone@example.com"]);
    after.close();
  });

  test("a copy whose secrets do not open with the master key is rolled back", async () => {
    const original = await openStore(source);
    await fill(original);
    original.close();
    const copy = gigmcp(["db", "copy", "--from", source, "--to", target.url], masterKey());
    expect(copy.code).toBe(1);
    expect(copy.err).toContain("does not open with the master key");
    expect(copy.err).toContain("nothing was copied");
    const after = await openStore(target.url);
    expect(await after.users.list()).toEqual([]);
    after.close();
  });

  test("db migrate prints the schema version, never the password", () => {
    const migrate = Bun.spawnSync([BUN, MAIN, "db", "migrate"], { env: { PATH: process.env.PATH!, GIG_DATA_DIR: dir, GIG_DB_URL: target.url, GIG_LOG_LEVEL: "error" } });
    expect(migrate.stderr.toString()).toBe("");
    expect(migrate.stdout.toString()).toContain(`is at schema version ${latestMigration(target.url.startsWith("postgres") ? "postgres" : "sqlite")}`);
    const password = new URL(target.url.startsWith("postgres") ? target.url : "sqlite://x").password;
    if (password) expect(migrate.stdout.toString()).not.toContain(password);
  });
});
