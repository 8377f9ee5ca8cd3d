/**
 * Persistent state behind repository interfaces. Callers see these types and
 * the Store interface only; the SQLite and Postgres dialects live behind
 * openStore, which picks one from the database URL.
 */
export * from "./types.ts";
import { withAuditThread } from "./audit-thread.ts";
import { openDrizzleStore } from "./open.ts";
import { timedStore } from "./timed.ts";
import type { Store } from "./types.ts";

export { AuditQueue } from "./audit-queue.ts";
export { hashToken } from "./repositories.ts";
export { parseDatabaseUrl } from "./open.ts";
export { copyDatabase, migrateDatabase, type TableCount } from "./copy.ts";

export interface StoreOptions {
  /** Audit appends on a writer thread of their own (the gateway's; see audit-thread.ts). */
  auditThread?: boolean;
}

/** Opens the database of GIG_DB_URL (migrating it); every operation is timed for /metrics. */
export async function openStore(dbUrl: string, options: StoreOptions = {}): Promise<Store> {
  const store = await openDrizzleStore(dbUrl);
  return timedStore(options.auditThread ? withAuditThread(store, dbUrl) : store);
}
export { credentialSpecProblem, parseCredentialSpec, SCOPE_PATTERN, VENDOR_PATTERN } from "./credential-specs.ts";
