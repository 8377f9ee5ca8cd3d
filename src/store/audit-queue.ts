/**
 * High-volume audit events (one per tool call, one per egress decision) are
 * written in batches: one INSERT for everything queued within a few
 * milliseconds instead of a statement per event. The event's time is taken
 * when it happens; flush() on shutdown writes what is left.
 */
import type { AuditRecord, AuditRepository } from "./types.ts";

/** How long an event may wait for others to share its INSERT. */
const BATCH_DELAY_MS = 25;
/** A batch this large is written at once. */
const MAX_BATCH = 500;

export class AuditQueue {
  private pending: (AuditRecord & { time: number })[] = [];
  private timer: Timer | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly audit: AuditRepository,
    /** Told of a batch that could not be written (the events are lost; the caller logs it). */
    private readonly onError: (error: unknown, lost: number) => void,
  ) {}

  /** Queues an event that happened at `time` (now, unless given). */
  add(event: AuditRecord & { time?: number }): void {
    this.pending.push({ ...event, time: event.time ?? Date.now() });
    if (this.pending.length >= MAX_BATCH) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), BATCH_DELAY_MS);
  }

  /** Writes everything queued so far; resolves once it is in the database (or reported lost). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length > 0) {
      // One batch at a time, in order: ids follow the order events happened in.
      this.writing = this.writing.then(() => this.audit.append(batch)).catch((error: unknown) => this.onError(error, batch.length));
    }
    return this.writing;
  }
}
