/** The audit log's keyed hash chain: concurrent writers keep one chain; edits, deletions and insertions are found. */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { SQL } from "bun";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { createHmac } from "node:crypto";
import { AuditQueue, copyDatabase, openStore, type AuditEvent, type Store } from "../src/store/index.ts";
import { chainAudit, createVault, parseKeyringList, type Vault } from "../src/vault/index.ts";
import { testDatabase, type TestDatabase } from "./helpers/database.ts";
import { BUN, ROOT, tempDir } from "./helpers/gateway.ts";

const MASTER_KEY = `k1:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;

let dir: string;
let database: TestDatabase;
let store: Store;
let vault: Vault;

beforeEach(async () => {
  dir = tempDir();
  database = await testDatabase(dir);
  store = await openStore(database.url);
  vault = createVault(parseKeyringList(MASTER_KEY));
});

afterEach(async () => {
  store.close();
  await database.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs SQL on the database behind the store's back, as someone with write access to it would. */
async function tamper(statement: string): Promise<void> {
  if (database.url.startsWith("sqlite:")) {
    const db = new Database(database.url.slice("sqlite:".length));
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec(statement);
    db.close();
    return;
  }
  const client = new SQL(database.url);
  try {
    await client.unsafe(statement);
  } finally {
    await client.close();
  }
}

async function recordSome(count: number): Promise<number[]> {
  const ids: number[] = [];
  for (let index = 0; index < count; index++) ids.push((await store.audit.record({ action: "test", decision: "allow", actor: "a", detail: { index } })).id);
  return ids;
}

function gigmcp(args: string[]) {
  const result = Bun.spawnSync([BUN, join(ROOT, "src/main.ts"), ...args], {
    env: { PATH: process.env.PATH!, GIG_DATA_DIR: dir, GIG_DB_URL: database.url, GIG_MASTER_KEY: MASTER_KEY, GIG_SANDBOX: "off" },
  });
  return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

describe("audit chain", () => {
  test("records and batches from two processes writing at once form one intact chain", async () => {
    await chainAudit(store, vault);
    const child = Bun.spawn([BUN, join(ROOT, "tests/helpers/audit-writer.ts"), database.url, "300"], {
      env: { PATH: process.env.PATH!, GIG_MASTER_KEY: MASTER_KEY },
      stderr: "pipe",
    });
    const queue = new AuditQueue(store.audit, (error) => {
      throw error;
    });
    let childDone = false;
    void child.exited.then(() => (childDone = true));
    // The parent keeps writing until the child is done, so the two overlap.
    const records: Promise<unknown>[] = [];
    for (let index = 0; !childDone; index++) {
      if (index % 3 === 0) records.push(store.audit.record({ action: "parent.record", decision: "allow", detail: { index } }));
      else queue.add({ action: "parent.batch", decision: "inject", tenantId: "t", detail: { index, nested: { b: 1, a: [1, "x"] } } });
      if (index % 10 === 0) await Bun.sleep(2);
    }
    await Promise.all([...records, queue.flush()]);
    expect(await child.exited).toBe(0);

    const events: AuditEvent[] = [];
    for (let page = await store.audit.list({ afterId: 0, limit: 1000 }); page.length > 0; page = await store.audit.list({ afterId: page.at(-1)!.id, limit: 1000 })) events.push(...page);
    const result = await store.audit.verify();
    expect(result).toMatchObject({ intact: true, verified: events.length, unchained: 0, broken: null, problem: null });
    expect(result.head!.id).toBe(events.at(-1)!.id);
    // The writers' events interleave: the chain passed from one process to the other and back.
    const writerChanges = events.filter((event, index) => index > 0 && event.action.split(".")[0] !== events[index - 1]!.action.split(".")[0]).length;
    expect(writerChanges).toBeGreaterThan(4);
  }, 30_000);

  test("events recorded before the key precede the chain; events without it after the start are reported", async () => {
    await recordSome(2);
    await chainAudit(store, vault);
    await recordSome(3);
    expect(await store.audit.verify()).toMatchObject({ intact: true, verified: 3, unchained: 2 });

    // A writer without the key (an old binary, or someone with database access) adds an unlinked row.
    const keyless = await openStore(database.url);
    const [slipped] = await (async () => {
      try {
        return [await keyless.audit.record({ action: "forged", decision: "allow" })];
      } finally {
        keyless.close();
      }
    })();
    await recordSome(1);
    expect((await store.audit.verify()).broken).toEqual({ kind: "inserted", id: slipped!.id });
  });

  test("the same key serves every store of the database: it is created once and sealed in the vault", async () => {
    await chainAudit(store, vault);
    await recordSome(2);
    const other = await openStore(database.url);
    try {
      await chainAudit(other, vault);
      await other.audit.record({ action: "other", decision: "deny" });
      expect(await other.audit.verify()).toMatchObject({ intact: true, verified: 3 });
    } finally {
      other.close();
    }
    expect((await store.sealedBlobs.all()).map((blob) => blob.name)).toContain("audit-chain-key");
  });

  test("a copied database keeps its chain, head and sealed key", async () => {
    await chainAudit(store, vault);
    await recordSome(3);
    const target = await testDatabase(dir, "copy.sqlite");
    try {
      await copyDatabase(database.url, target.url, async () => {});
      const copied = await openStore(target.url);
      try {
        await chainAudit(copied, vault);
        expect(await copied.audit.verify()).toMatchObject({ intact: true, verified: 3, head: (await store.audit.verify()).head });
      } finally {
        copied.close();
      }
    } finally {
      await target.drop();
    }
  });

  test("an edited event is named", async () => {
    await chainAudit(store, vault);
    const ids = await recordSome(5);
    await tamper(`UPDATE audit_events SET detail = '{"index":99}' WHERE id = ${ids[2]}`);
    const result = await store.audit.verify();
    expect(result).toMatchObject({ intact: false, verified: 2, broken: { kind: "edited", id: ids[2] } });
    expect(result.problem).toContain(`event ${ids[2]} was altered`);
  });

  test("deleting events in the middle is reported as a gap", async () => {
    await chainAudit(store, vault);
    const ids = await recordSome(6);
    await tamper(`DELETE FROM audit_events WHERE id IN (${ids[2]}, ${ids[3]})`);
    expect((await store.audit.verify()).broken).toEqual({ kind: "deleted", afterId: ids[1]!, beforeId: ids[4]! });
  });

  test("a row re-linked with another key does not pass", async () => {
    await chainAudit(store, vault);
    const ids = await recordSome(4);
    const [previous, target] = (await store.audit.list({ afterId: ids[0]! - 1, limit: 3 })).slice(1, 3);
    // The forger knows the format but not the key: a link made with a guessed key is no link.
    const forged = createHmac("sha256", new Uint8Array(32)).update(String(previous!.id)).update(JSON.stringify([target!.id, target!.time, "test", "deny", "a", null, {}])).digest("hex");
    await tamper(`UPDATE audit_events SET decision = 'deny', detail = '{}', chain = '${forged}' WHERE id = ${target!.id}`);
    expect((await store.audit.verify()).broken).toEqual({ kind: "edited", id: target!.id });
  });

  test("deleting the newest events is found against the stored head", async () => {
    await chainAudit(store, vault);
    const ids = await recordSome(4);
    await tamper(`DELETE FROM audit_events WHERE id = ${ids[3]}`);
    const result = await store.audit.verify();
    expect(result.broken).toEqual({ kind: "head", headId: ids[3]!, lastId: ids[2]! });
    expect(result.head).toMatchObject({ id: ids[2] });
  });

  test("gigmcp audit verify: exit 0 with the head when intact, 1 naming the break", async () => {
    await chainAudit(store, vault);
    const ids = await recordSome(3);
    const intact = gigmcp(["audit", "verify"]);
    expect(intact.code).toBe(0);
    const { head } = await store.audit.verify();
    expect(intact.stdout).toContain(`3 events verified, chain intact (head ${ids[2]} ${head!.chain})`);

    await tamper(`UPDATE audit_events SET actor = 'someone-else' WHERE id = ${ids[1]}`);
    const broken = gigmcp(["audit", "verify", "--json"]);
    expect(broken.code).toBe(1);
    expect(JSON.parse(broken.stdout)).toMatchObject({ intact: false, verified: 1, broken: { kind: "edited", id: ids[1] } });
  }, 30_000);
});
