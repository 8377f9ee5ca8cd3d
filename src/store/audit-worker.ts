/**
 * The audit writer thread (see audit-thread.ts): appends batches of audit
 * events through a database connection of its own, one batch at a time, in
 * the order they were sent.
 */
import { openDrizzleStore } from "./open.ts";
import type { AuditThreadReply, AuditThreadRequest, Store } from "./audit-thread.ts";

declare const self: Worker;

let store: Promise<Store> | undefined;
let work: Promise<void> = Promise.resolve();

self.onmessage = ({ data }: MessageEvent<AuditThreadRequest>) => {
  work = work.then(() => handle(data));
};

async function handle(request: AuditThreadRequest): Promise<void> {
  try {
    switch (request.kind) {
      case "open":
        store = openDrizzleStore(request.dbUrl);
        await store;
        break;
      case "key":
        await (await opened()).audit.useChainKey(request.key);
        break;
      case "append":
        await (await opened()).audit.append(request.events);
        break;
      case "close":
        (await opened()).close();
        break;
    }
    reply({ id: request.id });
  } catch (error) {
    reply({ id: request.id, error: error instanceof Error ? error.message : String(error) });
  }
}

function opened(): Promise<Store> {
  if (!store) throw new Error("the audit thread was not told which database to open");
  return store;
}

function reply(message: AuditThreadReply): void {
  self.postMessage(message);
}
