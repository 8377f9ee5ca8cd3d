/**
 * Master key rotation: re-wrap every sealed row's data key under the active
 * key. Payloads are untouched and each row is swapped on its own, so readers
 * always find a record some listed key opens, and a `credential set` racing
 * the rotation is never overwritten.
 */
import type { Store } from "../store/index.ts";
import { blobContext, credentialContext, oauthAppContext, oauthConnectionContext } from "./credentials.ts";
import type { SealContext, SealedSecret, Vault } from "./vault.ts";

/** One sealed row as rotation sees it, whatever table it lives in. */
interface SealedRow {
  /** For reports: "credential github/token (tenant …)", "blob proxy-ca". */
  label: string;
  context: SealContext;
  sealed: SealedSecret;
  /** Compare-and-swap of the sealed value. */
  replace(expected: SealedSecret, replacement: SealedSecret): Promise<boolean>;
  /** The current value, after a lost swap; undefined once the row is gone. */
  reload(): Promise<SealedSecret | undefined>;
}

/** Every table holding sealed values. A new one must be added here to be rotated. */
async function sealedRows(store: Store): Promise<SealedRow[]> {
  const credentials = (await store.credentials.all()).map(
    (record): SealedRow => ({
      label: `credential ${record.serverName}/${record.credentialId} (tenant ${record.tenantId})`,
      context: credentialContext(record),
      sealed: record.sealed,
      replace: (expected, replacement) => store.credentials.rewrap(record, expected, replacement),
      reload: async () => (await store.credentials.get(record.serverName, record.credentialId, record.tenantId))?.sealed,
    }),
  );
  const blobs = (await store.sealedBlobs.all()).map(
    (blob): SealedRow => ({
      label: `blob ${blob.name}`,
      context: blobContext(blob.name),
      sealed: blob.sealed,
      replace: (expected, replacement) => store.sealedBlobs.rewrap(blob.name, expected, replacement),
      reload: async () => (await store.sealedBlobs.get(blob.name))?.sealed,
    }),
  );
  const apps = (await store.oauthApps.list()).flatMap((app): SealedRow[] =>
    app.clientSecret === null
      ? []
      : [
          {
            label: `OAuth app ${app.vendor}`,
            context: oauthAppContext(app.vendor),
            sealed: app.clientSecret,
            replace: (expected, replacement) => store.oauthApps.rewrap(app.vendor, expected, replacement),
            reload: async () => (await store.oauthApps.get(app.vendor))?.clientSecret ?? undefined,
          },
        ],
  );
  const connections = (await store.oauthConnections.all()).map(
    (connection): SealedRow => ({
      label: `OAuth connection ${connection.vendor} (tenant ${connection.tenantId})`,
      context: oauthConnectionContext(connection.vendor, connection.tenantId),
      sealed: connection.sealed,
      replace: (expected, replacement) => store.oauthConnections.rewrap(connection.vendor, connection.tenantId, expected, replacement),
      reload: async () => (await store.oauthConnections.get(connection.vendor, connection.tenantId))?.sealed,
    }),
  );
  // Connect flows are left out: they live ten minutes, and the old key keeps opening them meanwhile.
  return [...credentials, ...blobs, ...apps, ...connections];
}

/** The first sealed row the vault cannot open, with why (never secret material); undefined when all open. */
export async function firstUnopenableRecord(store: Store, vault: Vault): Promise<{ label: string; reason: string } | undefined> {
  for (const row of await sealedRows(store)) {
    try {
      vault.open(row.sealed, row.context).fill(0);
    } catch (error) {
      return { label: row.label, reason: (error as Error).message };
    }
  }
  return undefined;
}

export interface RotationReport {
  activeKeyId: string;
  /** Rows whose data key was re-wrapped under the active key. */
  rewrapped: number;
  /** Rows already under the active key. */
  unchanged: number;
  /** Rows that could not be re-wrapped, with the vault's reason (never secret material). */
  failed: { label: string; reason: string }[];
  /** How many rows each key id wraps after the rotation. */
  keyUsage: Record<string, number>;
}

/** How many sealed rows each key id wraps; ids not in the keyring show up too. */
export async function sealedKeyUsage(store: Store): Promise<Record<string, number>> {
  const usage: Record<string, number> = {};
  for (const row of await sealedRows(store)) usage[row.sealed.keyId] = (usage[row.sealed.keyId] ?? 0) + 1;
  return usage;
}

// A row changing under us more often than this is being rewritten constantly; report it rather than spin.
const MAX_SWAP_ATTEMPTS = 5;

export async function rotateSealedRecords(store: Store, vault: Vault): Promise<RotationReport> {
  const report: RotationReport = { activeKeyId: vault.activeKeyId, rewrapped: 0, unchanged: 0, failed: [], keyUsage: {} };
  for (const row of await sealedRows(store)) {
    let current: SealedSecret | undefined = row.sealed;
    for (let attempt = 1; current !== undefined; attempt++) {
      if (current.keyId === vault.activeKeyId) {
        report.unchanged++;
        break;
      }
      if (attempt > MAX_SWAP_ATTEMPTS) {
        report.failed.push({ label: row.label, reason: "the record kept changing during rotation; run `gigmcp vault rotate` again" });
        break;
      }
      let replacement: SealedSecret;
      try {
        replacement = vault.rewrap(current, row.context);
      } catch (error) {
        report.failed.push({ label: row.label, reason: (error as Error).message });
        break;
      }
      if (await row.replace(current, replacement)) {
        report.rewrapped++;
        break;
      }
      current = await row.reload();
    }
  }
  report.keyUsage = await sealedKeyUsage(store);
  return report;
}
