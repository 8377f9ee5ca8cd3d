/** Commands on the database itself: migrating it, and copying it into another one (e.g. SQLite to Postgres). */
import { loadConfig, redactUrlPassword } from "../config/index.ts";
import { ConflictError, copyDatabase, migrateDatabase, parseDatabaseUrl, type Store } from "../store/index.ts";
import { firstUnopenableRecord, openVault, type Vault } from "../vault/index.ts";
import { UsageError, type CommandGroup, type Invocation } from "./command.ts";

function databaseUrl(invocation: Invocation, option: "from" | "to"): string {
  const value = invocation.values[option];
  if (typeof value !== "string" || value === "") throw new UsageError(`--${option} URL is required (sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE)`);
  try {
    parseDatabaseUrl(value);
  } catch (error) {
    throw new UsageError(`--${option}: ${(error as Error).message}`);
  }
  return value;
}

/** Every sealed value of the copy must open with the configured master key, or the copy is rolled back. */
async function opensEverySealedValue(vault: Vault, copied: Store): Promise<void> {
  const failure = await firstUnopenableRecord(copied, vault);
  if (failure) throw new ConflictError(`${failure.label} does not open with the master key (${failure.reason}); nothing was copied`);
}

export const dbCommands: CommandGroup = {
  name: "db",
  summary: "the database: migrate it, copy it into another one",
  commands: [
    {
      name: "db migrate",
      summary: "Apply the migrations GIG_DB_URL lacks and print its schema version.",
      usage: "db migrate",
      details: "The gateway also migrates at start; this does it ahead of an upgrade, or for a new Postgres database.",
      run: async () => {
        const config = loadConfig();
        const { dialect, version } = await migrateDatabase(config.dbUrl);
        console.log(`${redactUrlPassword(config.dbUrl)} (${dialect}) is at schema version ${version}`);
      },
    },
    {
      name: "db copy",
      summary: "Copy every row of one database into a new, empty one, and verify the copy.",
      usage: "db copy --from URL --to URL",
      options: { from: { type: "string" }, to: { type: "string" } },
      details:
        "URLs: sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE. The target is migrated and must\n" +
        "hold no rows. Rows are copied in one transaction that commits only when every table's row count\n" +
        "matches and every credential and sealed blob opens with the master key (GIG_MASTER_KEY[_FILE]).\n" +
        "Stop the gateway first: rows written during the copy are not copied.",
      run: async (invocation) => {
        const [from, to] = [databaseUrl(invocation, "from"), databaseUrl(invocation, "to")];
        const { vault } = openVault(loadConfig());
        const started = performance.now();
        const { counts } = await copyDatabase(from, to, (copied) => opensEverySealedValue(vault, copied));
        const rows = counts.reduce((sum, entry) => sum + entry.rows, 0);
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        console.log(`copied ${rows} rows in ${counts.length} tables, verified (${seconds} s)`);
      },
    },
  ],
};
