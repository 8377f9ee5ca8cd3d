/**
 * Finding credential placeholders (`gigph-` + 32 hex) in what a sandbox
 * sends. Matching ignores case, so an upper-cased copy is caught too.
 */

const PREFIX = "gigph-";
const PLACEHOLDER = /gigph-[0-9a-f]{32}/i;
export const PLACEHOLDER_LENGTH = PREFIX.length + 32;

/** Cheap first pass over a whole message head: false means no placeholder in any spelling containsPlaceholder() knows. */
export function mayContainPlaceholder(text: string): boolean {
  return text.includes("%") || PLACEHOLDER.test(text);
}

/** True if `text` holds a placeholder as is or percent-encoded (URLs, cookies, form values). */
export function containsPlaceholder(text: string): boolean {
  return PLACEHOLDER.test(text) || (text.includes("%") && PLACEHOLDER.test(percentDecode(text)));
}

/** Decodes %XX escapes and leaves anything else alone (decodeURIComponent throws on stray %). */
function percentDecode(text: string): string {
  return text.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** What a StreamScanner looks for: whether text holds it, and whether it could begin at `start` and be completed later. */
export interface Needle {
  maxLength: number;
  foundIn(text: string): boolean;
  canStartAt(text: string, start: number): boolean;
}

/** Any placeholder, in any letter case. */
export const PLACEHOLDER_NEEDLE: Needle = {
  maxLength: PLACEHOLDER_LENGTH,
  foundIn: (text) => PLACEHOLDER.test(text),
  canStartAt: isPlaceholderStart,
};

/** These exact strings (credential values, as latin1 text): the response side's needle. */
export function exactNeedle(values: readonly string[]): Needle {
  return {
    maxLength: Math.max(...values.map((value) => value.length)),
    foundIn: (text) => values.some((value) => text.includes(value)),
    canStartAt: (text, start) => values.some((value) => value.startsWith(text.slice(start, start + value.length))),
  };
}

/**
 * Scans a body as it streams. Bytes that could begin a needle completed by
 * the next chunk are held back until that chunk shows whether they do, so no
 * part of a needle ever leaves before it is recognised.
 */
export class StreamScanner {
  private held: Buffer = Buffer.alloc(0);

  constructor(private readonly needle: Needle) {}

  /** The bytes of `chunk` (and of earlier chunks held back) that are safe to send, or undefined if the needle appeared. */
  push(chunk: Buffer): Buffer | undefined {
    const data = this.held.length > 0 ? Buffer.concat([this.held, chunk]) : chunk;
    const text = data.toString("latin1");
    if (this.needle.foundIn(text)) return undefined;
    const keep = this.heldBackFrom(text);
    // A copy, so the held bytes do not pin a whole chunk in memory.
    this.held = Buffer.from(data.subarray(keep));
    return data.subarray(0, keep);
  }

  /** At the end of the body: what is still held back, which can no longer become the needle. */
  flush(): Buffer {
    const rest = this.held;
    this.held = Buffer.alloc(0);
    return rest;
  }

  /** Start of the longest suffix of `text` that could begin the needle (text.length if none). */
  private heldBackFrom(text: string): number {
    for (let start = Math.max(0, text.length - this.needle.maxLength + 1); start < text.length; start++) {
      if (this.needle.canStartAt(text, start)) return start;
    }
    return text.length;
  }
}

function isPlaceholderStart(text: string, start: number): boolean {
  for (let index = start; index < text.length && index - start < PLACEHOLDER_LENGTH; index++) {
    const offset = index - start;
    const code = text.charCodeAt(index);
    const char = code >= 0x41 && code <= 0x5a ? code | 0x20 : code; // ASCII lower case
    const ok = offset < PREFIX.length
      ? char === PREFIX.charCodeAt(offset)
      : (char >= 0x30 && char <= 0x39) || (char >= 0x61 && char <= 0x66);
    if (!ok) return false;
  }
  return true;
}
