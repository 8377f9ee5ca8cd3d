import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { drizzle } from "drizzle-orm/bun-sqlite";
import { embeddedMigrations, MIGRATIONS } from "../src/store/migrations.ts";
import journal from "../src/store/migrations/meta/_journal.json";
import { ConflictError, hashToken, NotFoundError, openStore, type ServerSpec, type Store, type User } from "../src/store/index.ts";
import { TEST_POSTGRES_URL, testDatabase, type TestDatabase } from "./helpers/database.ts";
import { tempDir } from "./helpers/gateway.ts";

/** Tests that read the SQLite file itself. */
const sqliteOnly = test.skipIf(TEST_POSTGRES_URL !== undefined);

const SPEC: ServerSpec = { name: "echo", kind: "builtin", command: "echo", args: [], env: {}, egress: [], roPaths: [], tier: "sealed", timeoutMs: null, limits: null, credentials: [] };

let dir: string;
let database: TestDatabase;
let store: Store;
let admin: User;

beforeEach(async () => {
  dir = tempDir();
  database = await testDatabase(dir);
  store = await openStore(database.url);
  admin = await store.users.create({ email: "Admin@Example.com", role: "admin" });
});

afterEach(async () => {
  store.close();
  await database.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe("store", () => {
  test("every migration in both journals is embedded, under the same tags in the same order", () => {
    for (const { journal, sql } of Object.values(MIGRATIONS)) {
      for (const entry of journal.entries) expect(sql[entry.tag]).toBeString();
      expect(Object.keys(sql)).toEqual(journal.entries.map((entry) => entry.tag));
    }
    expect(MIGRATIONS.postgres.journal.entries.map((entry) => entry.tag)).toEqual(MIGRATIONS.sqlite.journal.entries.map((entry) => entry.tag));
  });

  test("migrations are applied once; reopening keeps the data", async () => {
    store.close();
    store = await openStore(database.url);
    expect((await store.users.list()).map((user) => user.email)).toEqual(["admin@example.com"]);
  });

  sqliteOnly("a database from before credentials upgrades: existing servers declare none", async () => {
    const path = join(dir, "old.sqlite");
    const client = new Database(path, { create: true, strict: true });
    const internals = drizzle({ client }) as unknown as { dialect: { migrate(m: unknown, s: unknown, c: object): void }; session: unknown };
    const before = journal.entries.findIndex((entry) => entry.tag === "0002_credentials_vault");
    internals.dialect.migrate(embeddedMigrations("sqlite").slice(0, before), internals.session, {});
    client
      .query("INSERT INTO servers (id, name, kind, command, args, env, egress, ro_paths, tier, created_at, updated_at) VALUES ('1', 'old', 'builtin', 'echo', '[]', '{}', '[]', '[]', 'sealed', 0, 0)")
      .run();
    client.close();
    const upgraded = await openStore(`sqlite:${path}`);
    expect((await upgraded.servers.get("old")).credentials).toEqual([]);
    expect(await upgraded.credentials.list()).toEqual([]);
    upgraded.close();
  });

  sqliteOnly("tokens are stored only as their SHA-256", async () => {
    const profile = await store.profiles.create(admin.id, "work", { prefixTools: true });
    const { token, record } = await store.tokens.create(profile.id, "ci");
    const raw = new Database(join(dir, "db.sqlite"), { readonly: true });
    const row = raw.query("SELECT * FROM profile_tokens").get() as Record<string, unknown>;
    raw.close();
    expect(JSON.stringify(row)).not.toContain(token);
    expect(row.token_hash).toBe(hashToken(token));
    expect(row.prefix).toBe(token.slice(0, 12));
    expect((await store.tokens.resolve(token))?.profile.id).toBe(profile.id);
    expect(await store.tokens.resolve(`${token}x`)).toBeUndefined();
    expect(await store.tokens.resolve("not-a-token")).toBeUndefined();
    expect(await store.tokens.exists(record.id)).toBe(true);
  });

  test("every configuration change bumps the revision", async () => {
    const revisions = [await store.revision()];
    const profile = await store.profiles.create(admin.id, "work", { prefixTools: true });
    revisions.push(await store.revision());
    await store.servers.create(SPEC);
    revisions.push(await store.revision());
    await store.profiles.addServer(profile.id, "echo", ["echo"]);
    revisions.push(await store.revision());
    const { record } = await store.tokens.create(profile.id, "x");
    revisions.push(await store.revision());
    await store.tokens.markUsed(record.id, Date.now());
    expect(await store.revision()).toBe(revisions.at(-1)!);
    await store.tokens.revoke(profile.id, record.id);
    revisions.push(await store.revision());
    expect(new Set(revisions).size).toBe(revisions.length);
  });

  test("profiles are per tenant; deleting one removes its tokens and memberships", async () => {
    const member = await store.users.create({ email: "m@example.com", role: "member" });
    const mine = await store.profiles.create(admin.id, "default", { prefixTools: true });
    const theirs = await store.profiles.create(member.id, "default", { prefixTools: false });
    expect(mine.id).not.toBe(theirs.id);
    expect((await store.profiles.list(member.id)).map((profile) => profile.id)).toEqual([theirs.id]);
    await store.servers.create(SPEC);
    await store.profiles.addServer(mine.id, "echo", null);
    const { token } = await store.tokens.create(mine.id, "x");
    await store.profiles.delete(admin.id, "default");
    expect(await store.tokens.resolve(token)).toBeUndefined();
    expect(await store.profiles.members(mine.id)).toEqual([]);
    expect((await store.profiles.get(member.id, "default")).id).toBe(theirs.id);
  });

  test("removing a server removes it from profiles; upsert keeps memberships", async () => {
    const profile = await store.profiles.create(admin.id, "work", { prefixTools: true });
    const created = await store.servers.create(SPEC);
    await store.profiles.addServer(profile.id, "echo", ["echo"]);
    const updated = await store.servers.upsert({ ...SPEC, args: ["--verbose"] });
    expect(updated.id).toBe(created.id);
    expect(updated.updatedAt).toBeGreaterThanOrEqual(created.updatedAt);
    expect((await store.profiles.members(profile.id))[0]).toMatchObject({ server: { args: ["--verbose"] }, tools: ["echo"] });
    await store.servers.remove("echo");
    expect(await store.profiles.members(profile.id)).toEqual([]);
  });

  test("names, duplicates and missing things are refused clearly", async () => {
    await expect(store.profiles.create(admin.id, "Has_Underscore", { prefixTools: true })).rejects.toThrow(ConflictError);
    await expect(store.servers.create({ ...SPEC, name: "-x" })).rejects.toThrow("invalid server name");
    await store.servers.create(SPEC);
    await expect(store.servers.create(SPEC)).rejects.toThrow("server echo already exists");
    await expect(store.users.create({ email: "ADMIN@example.com", role: "member" })).rejects.toThrow("already exists");
    await expect(store.profiles.get(admin.id, "nope")).rejects.toThrow(NotFoundError);
    const profile = await store.profiles.create(admin.id, "work", { prefixTools: true });
    await expect(store.profiles.addServer(profile.id, "nope", null)).rejects.toThrow("no server named nope");
    await expect(store.profiles.removeServer(profile.id, "echo")).rejects.toThrow("not in this profile");
  });

  test("audit events are appended and listed newest first, or after a cursor", async () => {
    for (const action of ["a", "b", "c"]) await store.audit.record({ action, decision: "allow", tenantId: admin.id });
    await store.audit.record({ action: "other", decision: "deny", tenantId: "someone-else" });
    const mine = await store.audit.list({ tenantId: admin.id });
    expect(mine.map((event) => event.action)).toEqual(["c", "b", "a"]);
    const after = await store.audit.list({ afterId: mine[2]!.id });
    expect(after.map((event) => event.action)).toEqual(["b", "c", "other"]);
  });

  test("OAuth: a flow is taken once; connections are per tenant, listed without tokens, and marked for reconnection", async () => {
    const sealed = { keyId: "k1", nonce: "n", wrappedKey: "w", ciphertext: "c" } as never;
    const flow = { stateHash: "h1", vendor: "google", tenantId: admin.id, sessionUserId: null, sealed, createdAt: Date.now() - 1000 };
    await store.oauthFlows.create(flow);
    const [first, second] = await Promise.all([store.oauthFlows.take("h1"), store.oauthFlows.take("h1")]);
    expect([first, second].filter(Boolean)).toEqual([flow]);
    await store.oauthFlows.create({ ...flow, stateHash: "old", createdAt: 1 });
    await store.oauthFlows.create({ ...flow, stateHash: "new" });
    expect(await store.oauthFlows.removeStale(Date.now() - 60_000)).toBe(1);
    expect(await store.oauthFlows.take("new")).toBeDefined();

    const member = await store.users.create({ email: "m@example.com", role: "member" });
    const connection = { vendor: "google", status: "connected" as const, scopes: ["drive"], expiresAt: 5, problem: null, sealed };
    await store.oauthConnections.set({ ...connection, tenantId: admin.id });
    await store.oauthConnections.set({ ...connection, tenantId: member.id, scopes: ["mail"] });
    const listed = await store.oauthConnections.list(member.id);
    expect(listed).toEqual([expect.objectContaining({ vendor: "google", tenantId: member.id, scopes: ["mail"], status: "connected" })]);
    expect(listed[0]).not.toHaveProperty("sealed");
    await store.oauthConnections.markNeedsReconnect("google", member.id, "invalid_grant");
    expect(await store.oauthConnections.get("google", member.id)).toMatchObject({ status: "needs_reconnect", problem: "invalid_grant", sealed });
    expect((await store.oauthConnections.get("google", admin.id))?.status).toBe("connected");
    expect(await store.oauthConnections.remove("google", member.id)).toBe(true);
    expect(await store.oauthConnections.remove("google", member.id)).toBe(false);
    expect((await store.oauthConnections.list()).map((entry) => entry.tenantId)).toEqual([admin.id]);

    const app = await store.oauthApps.set({ vendor: "google", clientId: "id", authorizeUrl: null, tokenUrl: null, revokeUrl: null, scopes: ["openid"], pkce: false, clientSecret: sealed });
    expect(app).toMatchObject({ vendor: "google", clientId: "id", scopes: ["openid"], pkce: false, clientSecret: sealed });
    expect((await store.oauthApps.set({ ...app, clientId: "id2", clientSecret: null })).clientSecret).toBeNull();
    expect((await store.oauthApps.list()).map((entry) => entry.clientId)).toEqual(["id2"]);
    await store.oauthApps.remove("google");
    await expect(store.oauthApps.remove("google")).rejects.toThrow(NotFoundError);
  });
});
