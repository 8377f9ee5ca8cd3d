/**
 * Audit appends on the writer thread (the gateway's store): they land in the
 * database the store reads, link into the one chain alongside events recorded
 * on the calling thread, and fall back to the calling thread when the writer
 * thread cannot serve. Runs on SQLite and, in the postgres suite, on Postgres.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { AuditQueue, openStore, type Store } from "../src/store/index.ts";
import { withAuditThread } from "../src/store/audit-thread.ts";
import { chainAudit, createVault, parseKeyringList } from "../src/vault/index.ts";
import { testDatabase, type TestDatabase } from "./helpers/database.ts";
import { tempDir } from "./helpers/gateway.ts";

const vault = createVault(parseKeyringList(`k1:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`));

let dir: string;
let database: TestDatabase;
let store: Store;

beforeEach(async () => {
  dir = tempDir();
  database = await testDatabase(dir);
  store = await openStore(database.url, { auditThread: true });
  await chainAudit(store, vault);
});

afterEach(async () => {
  store.close();
  await Bun.sleep(50);
  await database.drop();
  rmSync(dir, { recursive: true, force: true });
});

test("batches written by the thread and events recorded here form one intact chain, in order", async () => {
  const lost: unknown[] = [];
  const queue = new AuditQueue(store.audit, (error) => lost.push(error));
  const recorded: Promise<unknown>[] = [];
  for (let index = 0; index < 600; index++) {
    if (index % 3 === 0) recorded.push(store.audit.record({ action: "here", decision: "allow", detail: { index } }));
    else queue.add({ action: "thread", decision: "deny", actor: "echo", tenantId: "t1", detail: { index, nested: { ok: true } } });
    if (index % 50 === 0) await Bun.sleep(5);
  }
  await Promise.all([...recorded, queue.flush()]);
  expect(lost).toEqual([]);

  const events = await store.audit.list({ limit: 1000 });
  expect(events.filter((event) => event.action === "thread")).toHaveLength(400);
  expect(events.filter((event) => event.action === "here")).toHaveLength(200);
  // Each writer's events keep their own order.
  const threadIndexes = events.filter((event) => event.action === "thread").map((event) => event.detail.index as number).reverse();
  expect(threadIndexes).toEqual([...threadIndexes].sort((a, b) => a - b));
  expect(events.find((event) => event.action === "thread")).toMatchObject({ actor: "echo", tenantId: "t1", decision: "deny", detail: { nested: { ok: true } } });

  const verification = await store.audit.verify();
  expect(verification.broken).toBeNull();
  expect(verification.verified).toBe(600);
});

test("a thread that cannot open the database hands appends back: nothing is lost and the chain holds", async () => {
  const plain = await openStore(database.url);
  // A path under a regular file cannot be created: the thread's open fails.
  const broken = withAuditThread(plain, "sqlite:/dev/null/gigmcp.db");
  await chainAudit(broken, vault);
  await Bun.sleep(100);
  await broken.audit.append([{ action: "fallback", decision: "allow", time: Date.now(), detail: { n: 1 } }]);
  expect((await store.audit.list({ limit: 10 })).map((event) => event.action)).toContain("fallback");
  expect((await store.audit.verify()).broken).toBeNull();
  broken.close();
});

test("an in-memory database is not shared with a thread: appends stay on the calling thread", async () => {
  const memory = await openStore("sqlite::memory:", { auditThread: true });
  await memory.audit.append([{ action: "memory", decision: "allow", time: Date.now(), detail: {} }]);
  expect((await memory.audit.list()).map((event) => event.action)).toEqual(["memory"]);
  memory.close();
});
