/**
 * Per-session memory of recently sent SSE events, so a client whose stream
 * broke (or that the server told to poll) can resume with Last-Event-ID.
 * Bounded by count and age: resumption is for short gaps, not an archive.
 */
import type { EventId, EventStore, StreamId } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";

const MAX_EVENTS = 512;
const MAX_AGE_MS = 5 * 60_000;

interface StoredEvent {
  id: EventId;
  streamId: StreamId;
  message: JSONRPCMessage;
  at: number;
}

export class SessionEventStore implements EventStore {
  private events: StoredEvent[] = [];
  private sequence = 0;

  async storeEvent(streamId: StreamId, message: JSONRPCMessage): Promise<EventId> {
    const id = `${++this.sequence}.${streamId}`;
    const now = Date.now();
    this.events.push({ id, streamId, message, at: now });
    const cutoff = now - MAX_AGE_MS;
    let drop = Math.max(0, this.events.length - MAX_EVENTS);
    while (drop < this.events.length && this.events[drop]!.at < cutoff) drop++;
    if (drop > 0) this.events = this.events.slice(drop);
    return id;
  }

  async getStreamIdForEventId(eventId: EventId): Promise<StreamId | undefined> {
    return this.events.find((event) => event.id === eventId)?.streamId ?? streamOf(eventId);
  }

  async replayEventsAfter(
    lastEventId: EventId,
    { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> },
  ): Promise<StreamId> {
    const streamId = streamOf(lastEventId);
    const position = this.events.findIndex((event) => event.id === lastEventId);
    if (streamId === undefined || position < 0) throw new Error("unknown or expired Last-Event-ID");
    for (const event of this.events.slice(position + 1)) {
      // Priming events carry no message; there is nothing to replay for them.
      if (event.streamId === streamId && "jsonrpc" in event.message) await send(event.id, event.message);
    }
    return streamId;
  }
}

function streamOf(eventId: EventId): StreamId | undefined {
  const dot = eventId.indexOf(".");
  return dot > 0 ? eventId.slice(dot + 1) : undefined;
}
