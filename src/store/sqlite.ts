/** The SQLite dialect: one file, one connection, drizzle on bun:sqlite. */
import { Database } from "bun:sqlite";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { drizzle } from "drizzle-orm/bun-sqlite";
import { driverError, type Db, type Dialect } from "./dialect.ts";
import { embeddedMigrations } from "./migrations.ts";
import * as tables from "./schema/sqlite.ts";

/** Opens (creating if needed) the SQLite database at `path` and applies migrations. */
export function openSqlite(path: string): Dialect {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const creating = path !== ":memory:" && !existsSync(path);
  const client = new Database(path, { create: true, strict: true });
  // It holds sealed secrets and token hashes: private to the gateway's user (SQLite gives -wal/-shm the same mode).
  if (creating) chmodSync(path, 0o600);
  client.exec("PRAGMA journal_mode = WAL");
  client.exec("PRAGMA busy_timeout = 5000");
  client.exec("PRAGMA foreign_keys = ON");
  client.exec("PRAGMA synchronous = NORMAL");
  const sqlite = drizzle({ client });
  // drizzle's file-based migrate() reads a folder; the binary embeds the files, so the
  // same dialect migrator is called with them directly.
  const internals = sqlite as unknown as { dialect: { migrate(m: unknown, s: unknown, c: object): void }; session: unknown };
  internals.dialect.migrate(embeddedMigrations("sqlite"), internals.session, {});
  const db = sqlite as unknown as Db;

  // drizzle's SQLite transactions take a synchronous callback; the repositories' work is async, so
  // transactions run one at a time on the connection, each between BEGIN IMMEDIATE and COMMIT.
  // bun:sqlite runs every statement synchronously and drizzle resolves it in a microtask, so a body
  // made only of statements never yields to the event loop and no other request's write can land
  // inside it. Keep it that way: a transaction body must not await anything but the database.
  let queue: Promise<unknown> = Promise.resolve();
  return {
    name: "sqlite",
    db,
    tables: tables as unknown as Dialect["tables"],
    transaction<T>(work: (tx: Db) => Promise<T>): Promise<T> {
      const run = async (): Promise<T> => {
        client.run("BEGIN IMMEDIATE");
        try {
          const result = await work(db);
          client.run("COMMIT");
          return result;
        } catch (error) {
          client.run("ROLLBACK");
          throw error;
        }
      };
      const result = queue.then(run, run);
      queue = result.catch(() => undefined);
      return result;
    },
    violation(error) {
      const message = String((driverError(error) as Error | undefined)?.message ?? "");
      if (message.includes("UNIQUE constraint failed")) return "unique";
      if (message.includes("FOREIGN KEY constraint failed")) return "foreign-key";
      return undefined;
    },
    // AUTOINCREMENT continues after the largest id present.
    afterCopy: async () => {},
    close: async () => client.close(),
  };
}
