/**
 * The key of the audit log's hash chain: 32 random bytes, created once per
 * database and kept sealed in it (rotation re-wraps it with the other blobs).
 */
import type { Store } from "../store/index.ts";
import { blobContext } from "./credentials.ts";
import type { Vault } from "./vault.ts";

const AUDIT_KEY_BLOB = "audit-chain-key";
const AUDIT_KEY_BYTES = 32;

/** Loads the audit key of the store's database (creating it on first use), so the events it records from now on are chained. */
export async function chainAudit(store: Store, vault: Vault): Promise<void> {
  const context = blobContext(AUDIT_KEY_BLOB);
  if (!(await store.sealedBlobs.get(AUDIT_KEY_BLOB))) {
    const fresh = crypto.getRandomValues(new Uint8Array(AUDIT_KEY_BYTES));
    // Instances starting together may each try to create it: the first one stored is the key all of them use.
    await store.sealedBlobs.add(AUDIT_KEY_BLOB, vault.seal(fresh, context));
    fresh.fill(0);
  }
  const key = vault.open((await store.sealedBlobs.get(AUDIT_KEY_BLOB))!.sealed, context);
  await store.audit.useChainKey(key);
  key.fill(0);
}
