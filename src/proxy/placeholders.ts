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

/**
 * Scans a body as it streams. Bytes that could begin a placeholder
 * completed by the next chunk are held back until that chunk shows whether
 * they do, so no part of a placeholder ever leaves before it is recognised.
 */
export class BodyScanner {
  private held: Buffer = Buffer.alloc(0);

  /** The bytes of `chunk` (and of earlier chunks held back) that are safe to send, or undefined if a placeholder appeared. */
  push(chunk: Buffer): Buffer | undefined {
    const data = this.held.length > 0 ? Buffer.concat([this.held, chunk]) : chunk;
    const text = data.toString("latin1");
    if (PLACEHOLDER.test(text)) return undefined;
    const keep = heldBackFrom(text);
    // A copy, so the held bytes do not pin a whole chunk in memory.
    this.held = Buffer.from(data.subarray(keep));
    return data.subarray(0, keep);
  }

  /** At the end of the body: what is still held back, which can no longer become a placeholder. */
  flush(): Buffer {
    const rest = this.held;
    this.held = Buffer.alloc(0);
    return rest;
  }
}

/** Start of the longest suffix of `text` that is the beginning of a placeholder (text.length if none). */
function heldBackFrom(text: string): number {
  for (let start = Math.max(0, text.length - PLACEHOLDER_LENGTH + 1); start < text.length; start++) {
    if (isPlaceholderStart(text, start)) return start;
  }
  return text.length;
}

function isPlaceholderStart(text: string, start: number): boolean {
  for (let index = start; index < text.length; index++) {
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
