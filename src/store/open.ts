/** Picks the dialect from the database URL and opens the store on it. */
import { ConfigError, redactUrlPassword } from "../config/index.ts";
import { openPostgres } from "./postgres.ts";
import { DrizzleStore } from "./repositories.ts";
import { openSqlite } from "./sqlite.ts";
import type { Dialect } from "./dialect.ts";
import type { Store } from "./types.ts";

/** `sqlite:PATH` or a plain path, or `postgres://…` / `postgresql://…`. */
export type DatabaseLocation = { dialect: "sqlite"; path: string } | { dialect: "postgres"; url: string };

export function parseDatabaseUrl(dbUrl: string): DatabaseLocation {
  if (/^postgres(ql)?:\/\//.test(dbUrl)) return { dialect: "postgres", url: dbUrl };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(dbUrl)) {
    throw new ConfigError(`unsupported database URL ${redactUrlPassword(dbUrl)}: use sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE`);
  }
  return { dialect: "sqlite", path: dbUrl.startsWith("sqlite:") ? dbUrl.slice("sqlite:".length) : dbUrl };
}


/** Opens the dialect of the URL, migrated to this build's schema. */
export async function openDialect(dbUrl: string): Promise<Dialect> {
  const location = parseDatabaseUrl(dbUrl);
  if (location.dialect === "sqlite") return openSqlite(location.path);
  try {
    return await openPostgres(location.url);
  } catch (error) {
    // The driver's message names the server, never the password; the URL is shown redacted.
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`cannot open the Postgres database ${redactUrlPassword(dbUrl)}: ${reason.replaceAll(location.url, redactUrlPassword(location.url))}`);
  }
}

/** Opens the store at `dbUrl` (creating and migrating it as needed). */
export async function openDrizzleStore(dbUrl: string): Promise<Store> {
  return new DrizzleStore(await openDialect(dbUrl));
}
