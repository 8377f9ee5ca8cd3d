/**
 * Per-session memory of recently sent SSE events, so a client whose stream
 * broke can resume with Last-Event-ID. Bounded by count and age: resumption
 * is for short gaps, not an archive. Event ids are the session's sequence
 * numbers; the stored event names its stream, which a resume continues.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";

const MAX_EVENTS = 512;
const MAX_AGE_MS = 5 * 60_000;

interface StoredEvent {
  id: string;
  streamId: string;
  /** Undefined for a priming event: an id for the client to resume from, nothing to replay. */
  message: JSONRPCMessage | undefined;
  at: number;
}

export class SessionEventStore {
  private events: StoredEvent[] = [];
  private sequence = 0;

  /** Stores an event of the stream and returns its id. */
  store(streamId: string, message: JSONRPCMessage | undefined): string {
    const id = String(++this.sequence);
    const now = Date.now();
    this.events.push({ id, streamId, message, at: now });
    const cutoff = now - MAX_AGE_MS;
    let drop = Math.max(0, this.events.length - MAX_EVENTS);
    while (drop < this.events.length && this.events[drop]!.at < cutoff) drop++;
    if (drop > 0) this.events = this.events.slice(drop);
    return id;
  }

  /** The stream of `lastEventId` and its messages sent after it; undefined when the id is unknown or expired. */
  after(lastEventId: string): { streamId: string; events: StoredEvent[] } | undefined {
    const position = this.events.findIndex((event) => event.id === lastEventId);
    if (position < 0) return undefined;
    const { streamId } = this.events[position]!;
    const events = this.events.slice(position + 1).filter((event) => event.streamId === streamId && event.message !== undefined);
    return { streamId, events };
  }
}
