/**
 * What differs between the SQL databases the store runs on, in one small
 * interface: the driver's connection, its tables, transactions and how it
 * reports constraint violations. Everything else (../repositories.ts) is
 * written once, against drizzle's query builder, which both drivers share.
 */
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import type { DialectName } from "./migrations.ts";
import type { Tables } from "./schema/tables.ts";

/**
 * The query builder as the repositories see it. SQLite's builder has the same
 * methods and awaits to the same results, so it is typed as Postgres's.
 */
export type Db = PgDatabase<PgQueryResultHKT>;

export interface Dialect {
  name: DialectName;
  db: Db;
  tables: Tables;
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Db) => Promise<T>): Promise<T>;
  /** The driver's own error for a violated unique or foreign key constraint (drizzle wraps it as `cause`). */
  violation(error: unknown): "unique" | "foreign-key" | undefined;
  /** After rows were copied in with their ids: makes generated ids continue after them. */
  afterCopy(tx: Db): Promise<void>;
  close(): Promise<void>;
}

/** The driver's error behind drizzle's wrapper (DrizzleQueryError keeps it as `cause`). */
export function driverError(error: unknown): unknown {
  return error instanceof Error && error.cause !== undefined ? error.cause : error;
}
