/**
 * The database a test uses: SQLite in the test's folder, or, when
 * GIG_TEST_POSTGRES_URL names a Postgres server (the "postgres" suite of
 * scripts/test.ts), a new database on it, dropped by `drop`.
 */
import { SQL } from "bun";
import { join } from "node:path";

export const TEST_POSTGRES_URL = process.env.GIG_TEST_POSTGRES_URL;

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function testDatabase(dir: string, sqliteFile = "db.sqlite"): Promise<TestDatabase> {
  if (!TEST_POSTGRES_URL) return { url: `sqlite:${join(dir, sqliteFile)}`, drop: async () => {} };
  const name = `gig_${crypto.randomUUID().replaceAll("-", "")}`;
  const admin = new SQL(TEST_POSTGRES_URL);
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.close();
  }
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    drop: async () => {
      const dropper = new SQL(TEST_POSTGRES_URL);
      try {
        // FORCE ends the store's pooled connections, which close() only starts closing.
        await dropper.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await dropper.close();
      }
    },
  };
}
