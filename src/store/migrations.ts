/**
 * drizzle-kit writes migrations as files; the compiled binary has no source
 * tree, so they are embedded here and handed to drizzle's own migrator.
 * `make migrations` regenerates the SQL; add each new file to SQL below
 * (a test fails when the journal names a file that is missing here).
 */
import type { MigrationMeta } from "drizzle-orm/migrator";
import journal from "./migrations/meta/_journal.json";
import init from "./migrations/0000_init.sql" with { type: "text" };
import serverLimits from "./migrations/0001_server_limits.sql" with { type: "text" };
import credentialsVault from "./migrations/0002_credentials_vault.sql" with { type: "text" };
import installedServers from "./migrations/0003_installed_servers.sql" with { type: "text" };
import authSessions from "./migrations/0004_auth_sessions.sql" with { type: "text" };

export const MIGRATION_SQL: Record<string, string> = {
  "0000_init": init,
  "0001_server_limits": serverLimits,
  "0002_credentials_vault": credentialsVault,
  "0003_installed_servers": installedServers,
  "0004_auth_sessions": authSessions,
};

export function embeddedMigrations(): MigrationMeta[] {
  return journal.entries.map((entry) => {
    const query = MIGRATION_SQL[entry.tag];
    if (query === undefined) throw new Error(`migration ${entry.tag} is in the journal but not embedded in src/store/migrations.ts`);
    return {
      sql: query.split("--> statement-breakpoint"),
      bps: entry.breakpoints,
      folderMillis: entry.when,
      hash: new Bun.CryptoHasher("sha256").update(query).digest("hex"),
    };
  });
}
