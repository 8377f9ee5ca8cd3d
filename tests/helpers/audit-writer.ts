/**
 * A second writer of the audit log, in its own process like another gateway
 * instance or the CLI: `bun audit-writer.ts DB_URL COUNT` with GIG_MASTER_KEY
 * set records COUNT events, half one by one and half through AuditQueue batches.
 */
import { AuditQueue, openStore } from "../../src/store/index.ts";
import { chainAudit, createVault, parseKeyringList } from "../../src/vault/index.ts";

const [url, count] = [process.argv[2]!, Number(process.argv[3])];
// As a gateway opens it: batches on the writer thread, single records here.
const store = await openStore(url, { auditThread: true });
await chainAudit(store, createVault(parseKeyringList(process.env.GIG_MASTER_KEY!)));
const queue = new AuditQueue(store.audit, (error) => {
  throw error;
});
const records: Promise<unknown>[] = [];
for (let index = 0; index < count; index++) {
  if (index % 2 === 0) records.push(store.audit.record({ action: "child.record", decision: "allow", detail: { index } }));
  else queue.add({ action: "child.batch", decision: "deny", actor: "child", detail: { index } });
  // Paced, so the other writer gets turns in between.
  if (index % 30 === 0) await Bun.sleep(30);
}
await Promise.all([...records, queue.flush()]);
store.close();
