/**
 * Audit appends (one event per tool call and per egress decision) on a thread
 * of their own. Building and running the batched INSERTs took about a quarter
 * of the request thread's time under load; the writer thread does it on
 * another core, through its own connection to the same database (SQLite in
 * WAL mode, or Postgres). The chain stays serialised by the database, as
 * between instances. If the thread dies, appends go back to this thread.
 */
import { runningCompiled } from "../config/index.ts";
import { parseDatabaseUrl } from "./open.ts";
import type { AuditRecord, AuditRepository, Store } from "./types.ts";

export type { Store } from "./types.ts";

type Events = (AuditRecord & { time: number })[];

/** What the writer thread is asked to do; each request carries an id its reply names. */
type Work = { kind: "open"; dbUrl: string } | { kind: "key"; key: Uint8Array } | { kind: "append"; events: Events } | { kind: "close" };
export type AuditThreadRequest = Work & { id: number };

export interface AuditThreadReply {
  id: number;
  error?: string;
}

/** How long close() waits for the thread to close its connection. */
const CLOSE_GRACE_MS = 2_000;

/**
 * The store with audit.append served by a writer thread; the chain key goes to
 * both. An in-memory SQLite database cannot be shared with another connection,
 * so such a store is returned as it is.
 */
export function withAuditThread(store: Store, dbUrl: string): Store {
  const location = parseDatabaseUrl(dbUrl);
  if (location.dialect === "sqlite" && location.path === ":memory:") return store;
  const thread = new AuditThread(dbUrl);
  const local = store.audit;
  const audit: AuditRepository = {
    ...local,
    append: (events) => (thread.alive ? thread.call({ kind: "append", events }) : local.append(events)),
    useChainKey: async (key) => {
      await local.useChainKey(key);
      // A thread that cannot take the key must not write unlinked events: appends stay here then.
      if (thread.alive) await thread.call({ kind: "key", key }).catch((error: unknown) => thread.stop(error));
    },
  };
  return new Proxy(store, {
    get(target, key) {
      if (key === "audit") return audit;
      if (key === "close") {
        return () => {
          target.close();
          void thread.close();
        };
      }
      const value: unknown = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

class AuditThread {
  alive = true;
  private readonly worker: Worker;
  private readonly pending = new Map<number, PromiseWithResolvers<void>>();
  private nextId = 0;

  constructor(dbUrl: string) {
    // The compiled executable embeds the worker as an entry point of its own, named relative to src/ (see the Makefile).
    this.worker = runningCompiled() ? new Worker("./store/audit-worker.ts") : new Worker(new URL("./audit-worker.ts", import.meta.url).href);
    this.worker.onmessage = ({ data }: MessageEvent<AuditThreadReply>) => {
      const waiting = this.pending.get(data.id);
      this.pending.delete(data.id);
      // An idle thread does not keep the process alive; one with work in flight does.
      if (this.pending.size === 0) this.worker.unref();
      if (data.error === undefined) waiting?.resolve();
      else waiting?.reject(new Error(data.error));
    };
    this.worker.onerror = (event) => this.die(new Error(`the audit writer thread failed: ${event.message}`));
    this.worker.addEventListener("close", () => this.die(new Error("the audit writer thread stopped")));
    void this.call({ kind: "open", dbUrl }).catch((error: unknown) => this.stop(error));
  }

  call(request: Work): Promise<void> {
    const id = this.nextId++;
    const reply = Promise.withResolvers<void>();
    if (this.pending.size === 0) this.worker.ref();
    this.pending.set(id, reply);
    this.worker.postMessage({ ...request, id });
    return reply.promise;
  }

  async close(): Promise<void> {
    if (!this.alive) return;
    let timer: Timer | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
    await Promise.race([this.call({ kind: "close" }).catch(() => undefined), grace]).finally(() => clearTimeout(timer));
    this.alive = false;
    this.worker.terminate();
  }

  /** Gives the thread up: later appends are written by this thread. */
  stop(error: unknown): void {
    this.die(error instanceof Error ? error : new Error(String(error)));
    this.worker.terminate();
  }

  /** Fails what is in flight (the queue reports those events lost) and sends later appends to this thread's store. */
  private die(error: Error): void {
    if (!this.alive) return;
    this.alive = false;
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
  }
}
