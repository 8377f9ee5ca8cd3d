/**
 * `gigmcp db migrate` and `gigmcp db copy`: bring a database to this build's
 * schema, and move every row of one database into another, empty one (e.g.
 * SQLite to Postgres), checked by counting rows afterwards.
 */
import { count, getTableName } from "drizzle-orm";
import type { PgTable } from "drizzle-orm/pg-core";
import type { Db, Dialect } from "./dialect.ts";
import { latestMigration } from "./migrations.ts";
import { redactUrlPassword } from "../config/index.ts";
import { openDialect } from "./open.ts";
import { DrizzleStore } from "./repositories.ts";
import type { Tables } from "./schema/tables.ts";
import { ConflictError, type Store } from "./types.ts";

/** Parents before children, so foreign keys hold after every insert. */
const COPY_ORDER: (keyof Tables)[] = [
  "users",
  "servers",
  "profiles",
  "profileServers",
  "profileTokens",
  "credentials",
  "placeholders",
  "sealedBlobs",
  "sessions",
  "apiTokens",
  "oauthApps",
  "oauthConnections",
  "oauthFlows",
  "auditEvents",
  "auditHead",
  "meta",
];

// Well below Postgres's 65535 bind parameters per statement for the widest table.
const ROWS_PER_INSERT = 500;

export interface TableCount {
  table: string;
  rows: number;
}

/** Applies migrations; returns the dialect and the schema version the database is now at. */
export async function migrateDatabase(dbUrl: string): Promise<{ dialect: string; version: string }> {
  const dialect = await openDialect(dbUrl);
  await dialect.close();
  return { dialect: dialect.name, version: latestMigration(dialect.name) };
}

async function rowCounts(db: Db, tables: Tables): Promise<TableCount[]> {
  const counts: TableCount[] = [];
  for (const key of COPY_ORDER) {
    const table = tables[key] as PgTable;
    const [row] = await db.select({ rows: count() }).from(table);
    counts.push({ table: getTableName(table), rows: Number(row?.rows ?? 0) });
  }
  return counts;
}

async function copyTable(from: Dialect, to: Db, target: Dialect, key: keyof Tables): Promise<void> {
  const rows = await from.db.select().from(from.tables[key] as PgTable);
  for (let start = 0; start < rows.length; start += ROWS_PER_INSERT) {
    await to.insert(target.tables[key] as PgTable).values(rows.slice(start, start + ROWS_PER_INSERT));
  }
}

/**
 * Copies every row of `fromUrl` into `toUrl` (created and migrated if needed,
 * but holding no rows) in one transaction, which commits only after the row
 * counts of every table match and `verify` accepted the copied store (the CLI
 * opens every sealed value with the vault); otherwise the target stays empty.
 */
export async function copyDatabase(
  fromUrl: string,
  toUrl: string,
  verify: (copied: Store) => Promise<void>,
): Promise<{ counts: TableCount[] }> {
  const from = await openDialect(fromUrl);
  try {
    const to = await openDialect(toUrl);
    try {
      const occupied = (await rowCounts(to.db, to.tables)).filter((entry) => entry.rows > 0);
      if (occupied.length > 0) {
        throw new ConflictError(
          `the target database ${redactUrlPassword(toUrl)} is not empty (${occupied.map((entry) => `${entry.table}: ${entry.rows} rows`).join(", ")}): ` +
            "copy only into a new database (it is created and migrated on first use)",
        );
      }
      const expected = await rowCounts(from.db, from.tables);
      const counts = await to.transaction(async (tx) => {
        for (const key of COPY_ORDER) await copyTable(from, tx, to, key);
        await to.afterCopy(tx);
        const actual = await rowCounts(tx, to.tables);
        const mismatches = expected.flatMap((entry, index) => (actual[index]!.rows === entry.rows ? [] : [`${entry.table} ${entry.rows} → ${actual[index]!.rows}`]));
        if (mismatches.length > 0) throw new Error(`row counts differ after the copy, nothing was copied: ${mismatches.join(", ")}`);
        await verify(new DrizzleStore({ ...to, db: tx }));
        return actual;
      });
      return { counts };
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
}
