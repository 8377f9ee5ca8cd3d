/**
 * The address pool sandboxes draw from: an IPv4 network cut into /30 slots.
 * Slot N is gig<N> on the host with the slot's first usable address, and the
 * sandbox's eth0 with the second.
 */
import * as v from "valibot";
import { isIPv4 } from "node:net";

export const SLOT_PREFIX_LENGTH = 30;
const SLOT_SIZE = 2 ** (32 - SLOT_PREFIX_LENGTH);
/** A /28 holds four sandboxes; a smaller pool is almost certainly a mistake, and so is one wider than a /8. */
const LONGEST_POOL_PREFIX = 28;
const SHORTEST_POOL_PREFIX = 8;

export interface Slot {
  slot: number;
  hostIfname: string;
  hostAddress: string;
  sandboxAddress: string;
  prefixLength: typeof SLOT_PREFIX_LENGTH;
}

interface Network {
  base: number;
  prefixLength: number;
}

function toNumber(address: string): number {
  return address.split(".").reduce((value, octet) => value * 256 + Number(octet), 0);
}

function toAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

const cidr = v.pipe(
  v.string(),
  v.trim(),
  v.rawTransform(({ dataset, addIssue, NEVER }): Network => {
    const [address = "", prefix = "", ...rest] = dataset.value.split("/");
    if (rest.length > 0 || !isIPv4(address) || !/^\d{1,2}$/.test(prefix) || Number(prefix) > 32) {
      addIssue({ message: "expected an IPv4 network in CIDR notation such as 10.88.0.0/16" });
      return NEVER;
    }
    const prefixLength = Number(prefix);
    if (prefixLength < SHORTEST_POOL_PREFIX || prefixLength > LONGEST_POOL_PREFIX) {
      addIssue({ message: `the prefix must be /${SHORTEST_POOL_PREFIX} to /${LONGEST_POOL_PREFIX}: every sandbox takes a /${SLOT_PREFIX_LENGTH}` });
      return NEVER;
    }
    const base = toNumber(address);
    const size = 2 ** (32 - prefixLength);
    if (base % size !== 0) {
      addIssue({ message: `${address} is not the network address of a /${prefixLength}: use ${toAddress(base - (base % size))}/${prefixLength}` });
      return NEVER;
    }
    return { base, prefixLength };
  }),
);

export class AddressPool {
  /** Number of /30 slots in the pool. */
  readonly capacity: number;
  private readonly used = new Set<number>();

  private constructor(
    readonly cidr: string,
    private readonly network: Network,
  ) {
    this.capacity = 2 ** (SLOT_PREFIX_LENGTH - network.prefixLength);
  }

  /** Parses a pool such as "10.88.0.0/16"; the error says what is wrong and how to fix it. */
  static parse(text: string): AddressPool {
    const result = v.safeParse(cidr, text);
    if (!result.success) throw new Error(`invalid sandbox address pool ${JSON.stringify(text)}: ${result.issues[0].message}`);
    return new AddressPool(text.trim(), result.output);
  }

  /** Takes the lowest free slot, so addresses stay compact and predictable. */
  allocate(): Slot {
    // A linear scan over the slots in use: sandboxes are few and started rarely compared to this cost.
    for (let slot = 0; slot < this.capacity; slot++) {
      if (this.used.has(slot)) continue;
      this.used.add(slot);
      return this.describe(slot);
    }
    throw new Error(`sandbox address pool ${this.cidr} is exhausted (${this.capacity} sandboxes): configure a larger pool`);
  }

  release(slot: number): void {
    this.used.delete(slot);
  }

  private describe(slot: number): Slot {
    const start = this.network.base + slot * SLOT_SIZE;
    return {
      slot,
      hostIfname: `gig${slot}`,
      hostAddress: toAddress(start + 1),
      sandboxAddress: toAddress(start + 2),
      prefixLength: SLOT_PREFIX_LENGTH,
    };
  }
}
