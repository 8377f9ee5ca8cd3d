/**
 * drizzle-kit writes migrations as files; the compiled binary has no source
 * tree, so they are embedded here and handed to drizzle's own migrators.
 * `make migrations NAME=…` regenerates the SQL of both dialects under the same
 * tag; add each new file of each dialect below (a test fails when a journal
 * names a file that is missing here).
 */
import type { MigrationMeta } from "drizzle-orm/migrator";
import sqliteJournal from "./migrations/meta/_journal.json";
import sqliteInit from "./migrations/0000_init.sql" with { type: "text" };
import sqliteServerLimits from "./migrations/0001_server_limits.sql" with { type: "text" };
import sqliteCredentialsVault from "./migrations/0002_credentials_vault.sql" with { type: "text" };
import sqliteInstalledServers from "./migrations/0003_installed_servers.sql" with { type: "text" };
import sqliteAuthSessions from "./migrations/0004_auth_sessions.sql" with { type: "text" };
import sqliteOAuthConnections from "./migrations/0005_oauth_connections.sql" with { type: "text" };
import sqliteOAuthRefreshLease from "./migrations/0006_oauth_refresh_lease.sql" with { type: "text" };
import sqliteAuditChain from "./migrations/0007_audit_chain.sql" with { type: "text" };
import postgresJournal from "./migrations/postgres/meta/_journal.json";
import postgresInit from "./migrations/postgres/0000_init.sql" with { type: "text" };
import postgresServerLimits from "./migrations/postgres/0001_server_limits.sql" with { type: "text" };
import postgresCredentialsVault from "./migrations/postgres/0002_credentials_vault.sql" with { type: "text" };
import postgresInstalledServers from "./migrations/postgres/0003_installed_servers.sql" with { type: "text" };
import postgresAuthSessions from "./migrations/postgres/0004_auth_sessions.sql" with { type: "text" };
import postgresOAuthConnections from "./migrations/postgres/0005_oauth_connections.sql" with { type: "text" };
import postgresOAuthRefreshLease from "./migrations/postgres/0006_oauth_refresh_lease.sql" with { type: "text" };
import postgresAuditChain from "./migrations/postgres/0007_audit_chain.sql" with { type: "text" };

export type DialectName = "sqlite" | "postgres";

interface Journal {
  entries: { tag: string; when: number; breakpoints: boolean }[];
}

export const MIGRATIONS: Record<DialectName, { journal: Journal; sql: Record<string, string> }> = {
  sqlite: {
    journal: sqliteJournal,
    sql: {
      "0000_init": sqliteInit,
      "0001_server_limits": sqliteServerLimits,
      "0002_credentials_vault": sqliteCredentialsVault,
      "0003_installed_servers": sqliteInstalledServers,
      "0004_auth_sessions": sqliteAuthSessions,
      "0005_oauth_connections": sqliteOAuthConnections,
      "0006_oauth_refresh_lease": sqliteOAuthRefreshLease,
      "0007_audit_chain": sqliteAuditChain,
    },
  },
  postgres: {
    journal: postgresJournal,
    sql: {
      "0000_init": postgresInit,
      "0001_server_limits": postgresServerLimits,
      "0002_credentials_vault": postgresCredentialsVault,
      "0003_installed_servers": postgresInstalledServers,
      "0004_auth_sessions": postgresAuthSessions,
      "0005_oauth_connections": postgresOAuthConnections,
      "0006_oauth_refresh_lease": postgresOAuthRefreshLease,
      "0007_audit_chain": postgresAuditChain,
    },
  },
};

export function embeddedMigrations(dialect: DialectName): MigrationMeta[] {
  const { journal, sql } = MIGRATIONS[dialect];
  return journal.entries.map((entry) => {
    const query = sql[entry.tag];
    if (query === undefined) throw new Error(`${dialect} migration ${entry.tag} is in the journal but not embedded in src/store/migrations.ts`);
    return {
      sql: query.split("--> statement-breakpoint"),
      bps: entry.breakpoints,
      folderMillis: entry.when,
      hash: new Bun.CryptoHasher("sha256").update(query).digest("hex"),
    };
  });
}

/** The schema version a fully migrated database of this build has: the newest migration's tag. */
export function latestMigration(dialect: DialectName): string {
  return MIGRATIONS[dialect].journal.entries.at(-1)!.tag;
}
