/**
 * The audit log's keyed hash chain. Each event's link is an HMAC over the
 * link before it and the event itself, so editing, deleting or inserting a
 * row without the key breaks the chain at that row. The repository writes
 * links in the transaction that inserts the events; ChainWalk recomputes them.
 */
import { createHmac } from "node:crypto";
import type { AuditChainBreak, AuditEvent, AuditVerification } from "./types.ts";

/** The link before the first chained event. */
export const CHAIN_START = "";

export interface ChainedEvent extends AuditEvent {
  chain: string | null;
}

export function chainLink(key: Uint8Array, previous: string, event: AuditEvent): string {
  // JSON of a fixed-order array separates the fields unambiguously; detail is hashed as its JSON column
  // holds it, so re-reading and re-encoding it yields the same bytes.
  const canonical = JSON.stringify([event.id, event.time, event.action, event.decision, event.actor, event.tenantId, event.detail]);
  return createHmac("sha256", key).update(previous).update(canonical).digest("hex");
}

/**
 * Recomputes the chain over events fed in id order, stopping at the first
 * broken link. A link that fails is judged by the row after it: if that row
 * follows the last good link, the failed row was slipped in; otherwise rows
 * were deleted (ids jump) or the row was edited.
 */
export class ChainWalk {
  verified = 0;
  unchained = 0;
  /** The last verified link. */
  head: { id: number; chain: string } | null = null;
  broken: AuditChainBreak | null = null;
  private lastId = 0;
  private suspect: ChainedEvent | undefined;

  constructor(private readonly key: Uint8Array) {}

  /** Takes the next event; false once the chain is broken (later events tell nothing more). */
  add(event: ChainedEvent): boolean {
    if (this.suspect) {
      this.broken = this.follows(event) ? { kind: "inserted", id: this.suspect.id } : this.damage(this.suspect);
      return false;
    }
    if (event.chain === null && this.head === null) {
      this.unchained++;
      this.lastId = event.id;
      return true;
    }
    if (this.follows(event)) {
      this.verified++;
      this.head = { id: event.id, chain: event.chain! };
      this.lastId = event.id;
      return true;
    }
    if (event.chain === null) {
      this.broken = { kind: "inserted", id: event.id };
      return false;
    }
    this.suspect = event;
    return true;
  }

  /** After the last event: a pending suspect is judged without a successor; the stored head must match the walk's. */
  finish(storedHead: { lastId: number; lastChain: string } | undefined): AuditVerification {
    if (this.suspect && !this.broken) this.broken = this.damage(this.suspect);
    const walked = this.head;
    if (!this.broken && (storedHead?.lastId ?? 0) !== (walked?.id ?? 0)) {
      this.broken = { kind: "head", headId: storedHead?.lastId ?? 0, lastId: walked?.id ?? 0 };
    } else if (!this.broken && storedHead && walked && storedHead.lastChain !== walked.chain) {
      this.broken = { kind: "head", headId: storedHead.lastId, lastId: walked.id };
    }
    const { verified, unchained, head, broken } = this;
    return { verified, unchained, head, intact: broken === null, broken, problem: broken && describeBreak(broken) };
  }

  private follows(event: ChainedEvent): boolean {
    return event.chain !== null && event.chain === chainLink(this.key, this.head?.chain ?? CHAIN_START, event);
  }

  private damage(event: ChainedEvent): AuditChainBreak {
    return event.id > this.lastId + 1 ? { kind: "deleted", afterId: this.lastId, beforeId: event.id } : { kind: "edited", id: event.id };
  }
}

function describeBreak(broken: AuditChainBreak): string {
  switch (broken.kind) {
    case "edited":
      return `event ${broken.id} was altered after it was written (its link does not match)`;
    case "deleted":
      return `events between ${broken.afterId} and ${broken.beforeId} were deleted (or event ${broken.beforeId} was altered)`;
    case "inserted":
      return `event ${broken.id} was inserted without a valid link (not written through the chain, or written without the audit key)`;
    case "head":
      return `the chain ends at event ${broken.lastId} but the stored head records event ${broken.headId}: the newest events were deleted or the head was altered`;
  }
}
