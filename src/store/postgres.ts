/** The Postgres dialect: drizzle on Bun's built-in SQL client (a connection pool). */
import { SQL } from "bun";
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/bun-sql";
import { driverError, type Db, type Dialect } from "./dialect.ts";
import { embeddedMigrations } from "./migrations.ts";
import * as tables from "./schema/postgres.ts";

// SQLSTATE codes of the constraint violations the repositories turn into clear errors.
const UNIQUE_VIOLATION = "23505";
const FOREIGN_KEY_VIOLATION = "23503";
// Serialises migrations of gateways starting at the same time against one database.
const MIGRATION_LOCK = 0x6769676d; // "gigm"

/** Connects to the Postgres database at `url` (postgres:// or postgresql://) and applies migrations. */
export async function openPostgres(url: string): Promise<Dialect> {
  const client = new SQL(url);
  const postgres = drizzle({ client });
  const db = postgres as unknown as Db;
  const internals = postgres as unknown as { dialect: { migrate(m: unknown, s: unknown, c: object): Promise<void> }; session: unknown };
  try {
    await client.begin(async (lock) => {
      await lock`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
      await internals.dialect.migrate(embeddedMigrations("postgres"), internals.session, {});
    });
  } catch (error) {
    await client.close();
    throw error;
  }
  return {
    name: "postgres",
    db,
    tables: tables as unknown as Dialect["tables"],
    transaction: (work) => db.transaction((tx) => work(tx as unknown as Db)),
    violation(error) {
      const code = (driverError(error) as { errno?: unknown } | undefined)?.errno;
      if (code === UNIQUE_VIOLATION) return "unique";
      if (code === FOREIGN_KEY_VIOLATION) return "foreign-key";
      return undefined;
    },
    // Identity columns do not move past ids inserted explicitly: continue after the largest.
    afterCopy: async (tx) => {
      await tx.execute(sql`SELECT setval(pg_get_serial_sequence('audit_events', 'id'), COALESCE((SELECT max(id) FROM audit_events), 0) + 1, false)`);
    },
    close: () => client.close(),
  };
}
