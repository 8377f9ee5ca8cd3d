/**
 * Just enough HTTP/1.1 for the egress proxy, strict on what it accepts from
 * sandboxes (RFC 9112): heads with CRLF line ends and no folding, one framing
 * per message, bounded sizes, and a timeout on every wait.
 */
import type { Duplex } from "node:stream";

/** A message the proxy refuses; `status` is what the sender gets back, when it can still get an answer. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Which end of an exchange an I/O failure came from. */
export type Peer = "client" | "upstream";

export class TimeoutError extends Error {
  override name = "TimeoutError";
  constructor(message: string, readonly peer?: Peer) {
    super(message);
  }
}

/** The peer closed the connection (or it failed) before the message was complete. */
export class ClosedError extends Error {
  override name = "ClosedError";
  constructor(message: string, readonly peer?: Peer) {
    super(message);
  }
}

const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");
/** Above this much unread input the socket is paused, so a fast sender cannot fill memory. */
const READ_HIGH_WATER = 256 * 1024;
/** Output is gathered up to this size before it is written; fewer, fuller TLS records. */
const WRITE_BATCH = 64 * 1024;

/**
 * Pull-style reading of a socket: the proxy asks for a head, a line or some
 * bytes and waits (at most a timeout) until they are there.
 */
export class StreamReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  /** Set by cancel(): reading stopped on our side, not the peer's. */
  cancelled = false;
  /** Run before waiting for input, e.g. to flush output gathered so far. */
  beforeWait: (() => Promise<void>) | undefined;

  constructor(private readonly socket: Duplex, private readonly peer: Peer) {
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("close", this.onEnd);
    socket.on("error", this.onError);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size >= READ_HIGH_WATER) this.socket.pause();
    this.wake?.();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake?.();
  };

  private readonly onError = (error: Error): void => {
    this.failure ??= error;
    this.wake?.();
  };

  /** Bytes received and not read yet. */
  get buffered(): number {
    return this.size;
  }

  /** True once the peer has finished sending and everything was read. */
  get finished(): boolean {
    return this.size === 0 && (this.ended || this.failure !== undefined);
  }

  /** Makes the pending and every later wait fail: the exchange is over on our side. */
  cancel(): void {
    this.cancelled = true;
    this.failure ??= new ClosedError("reading was cancelled", this.peer);
    this.wake?.();
  }

  /** Stops reading and returns what was received but not read (e.g. bytes after a CONNECT head). */
  detach(): Buffer {
    this.socket.off("data", this.onData);
    this.socket.off("end", this.onEnd);
    this.socket.off("close", this.onEnd);
    this.socket.off("error", this.onError);
    const rest = Buffer.concat(this.chunks);
    this.chunks = [];
    this.size = 0;
    return rest;
  }

  /**
   * The head of the next message, through its blank line. Undefined if the
   * stream ends before its first byte. `idleMs` bounds the wait for that
   * first byte, `completeMs` the time from there to the blank line.
   */
  async head(maxBytes: number, idleMs: number, completeMs: number): Promise<Buffer | undefined> {
    let searchFrom = 0;
    let deadline = 0;
    for (;;) {
      if (this.size > 0) {
        const all = this.coalesce();
        const end = all.indexOf(HEAD_END, searchFrom);
        if (end >= 0 && end + 4 <= maxBytes) return this.take(end + 4);
        if (end >= 0 || this.size >= maxBytes) throw new ProtocolError(431, `the message head exceeds ${maxBytes} bytes`);
        // A head ended by bare LFs would otherwise wait for a CRLF that never comes.
        if (all.includes("\n\n")) throw new ProtocolError(400, "the message head must end its lines with CRLF");
        searchFrom = Math.max(0, this.size - 3);
        deadline ||= Date.now() + completeMs;
      }
      if (this.ended || this.failure) {
        if (this.size === 0) return undefined;
        throw new ClosedError("the connection closed in the middle of a message head", this.peer);
      }
      await this.waitForInput(deadline ? deadline - Date.now() : idleMs);
    }
  }

  /** A line without its CRLF, for chunk sizes and trailers. */
  async line(maxBytes: number, idleMs: number): Promise<string> {
    let searchFrom = 0;
    for (;;) {
      if (this.size > 0) {
        const all = this.coalesce();
        const end = all.indexOf(CRLF, searchFrom);
        if (end >= 0 && end <= maxBytes) return this.take(end + 2).toString("latin1", 0, end);
        if (end >= 0 || this.size >= maxBytes + 2) throw new ProtocolError(400, `a chunked-encoding line exceeds ${maxBytes} bytes`);
        searchFrom = Math.max(0, this.size - 1);
      }
      await this.waitForInput(idleMs);
    }
  }

  /** Between 1 and `maxBytes` bytes; undefined at the end of the stream. */
  async some(maxBytes: number, idleMs: number): Promise<Buffer | undefined> {
    while (this.size === 0) {
      if (this.ended || this.failure) return undefined;
      await this.waitForInput(idleMs);
    }
    const first = this.chunks[0]!;
    return this.take(Math.min(first.length, maxBytes));
  }

  /** Exactly `count` bytes, or ClosedError. */
  async exactly(count: number, idleMs: number): Promise<Buffer> {
    while (this.size < count) await this.waitForInput(idleMs);
    return this.take(count);
  }

  private async waitForInput(timeoutMs: number): Promise<void> {
    if (this.failure) throw new ClosedError(`the connection failed: ${this.failure.message}`, this.peer);
    if (this.ended) throw new ClosedError("the connection closed in the middle of a message", this.peer);
    if (this.beforeWait) {
      const seen = this.size;
      await this.beforeWait();
      // Input may have come in meanwhile, with nobody waiting to be woken.
      if (this.size !== seen || this.ended || this.failure) return;
    }
    if (this.socket.isPaused()) this.socket.resume();
    if (timeoutMs <= 0) throw new TimeoutError("timed out waiting for data", this.peer);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        reject(new TimeoutError("timed out waiting for data", this.peer));
      }, timeoutMs);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private coalesce(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!;
  }

  private take(count: number): Buffer {
    let result: Buffer;
    const first = this.chunks[0]!;
    if (first.length === count) {
      this.chunks.shift();
      result = first;
    } else if (first.length > count) {
      this.chunks[0] = first.subarray(count);
      result = first.subarray(0, count);
    } else {
      result = this.coalesce().subarray(0, count);
      this.chunks[0] = this.chunks[0]!.subarray(count);
    }
    this.size -= count;
    if (this.size < READ_HIGH_WATER && this.socket.isPaused()) this.socket.resume();
    return result;
  }
}

/**
 * Output to a socket, gathered into batches: `flush` writes them and waits
 * (at most `idleMs`) while the peer is not reading.
 */
export class Outbox {
  private parts: Buffer[] = [];
  private size = 0;
  /** Bytes handed to the socket so far. */
  written = 0;

  constructor(private readonly socket: Duplex, private readonly peer: Peer, private readonly idleMs: number) {}

  /** Queues `data` (a string is taken byte for byte, as latin1). */
  async add(data: Buffer | string): Promise<void> {
    if (data.length === 0) return;
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    this.parts.push(bytes);
    this.size += bytes.length;
    if (this.size >= WRITE_BATCH) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    this.written += this.size;
    this.parts = [];
    this.size = 0;
    if (this.socket.destroyed) throw new ClosedError("the connection is closed", this.peer);
    if (this.socket.write(data)) return;
    await drained(this.socket, this.peer, this.idleMs);
  }
}

function drained(socket: Duplex, peer: Peer, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      socket.off("drain", onDrain);
      socket.off("close", onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new ClosedError("the connection closed while data was being sent", peer));
    const timer = setTimeout(() => done(new TimeoutError("timed out: the peer stopped reading", peer)), timeoutMs);
    socket.on("drain", onDrain);
    socket.on("close", onClose);
  });
}

export interface Field {
  name: string;
  value: string;
  /** The name in lower case, for lookups. */
  key: string;
}

export interface RequestHead {
  method: string;
  target: string;
  fields: Field[];
}

export interface ResponseHead {
  version: "1.0" | "1.1";
  status: number;
  /** Only the fields that decide framing and connection reuse. */
  fields: Field[];
}

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const REQUEST_LINE = new RegExp(`^(${TOKEN}) ([\\x21-\\x7e]+) HTTP/1\\.1$`);
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\x00-\x08\x0a-\x1f\x7f]*)?$/;
const HEADER_LINE = new RegExp(`^(${TOKEN}):[ \\t]*(.*?)[ \\t]*$`);
/** Control characters other than tab, never valid in a field value. */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Parses a request head (as latin1 text) inside a tunnel; origin-form targets and HTTP/1.1 only. */
export function parseRequestHead(head: string): RequestHead {
  const lines = splitHead(head);
  const match = REQUEST_LINE.exec(lines[0]!);
  if (!match) {
    if (/ HTTP\/\d\.\d$/.test(lines[0]!) && !lines[0]!.endsWith(" HTTP/1.1")) throw new ProtocolError(505, "only HTTP/1.1 is supported inside the tunnel");
    throw new ProtocolError(400, "malformed request line");
  }
  const target = match[2]!;
  if (!target.startsWith("/") && !(target === "*" && match[1] === "OPTIONS")) {
    throw new ProtocolError(400, "the request target must be a path (origin-form), such as /v1/items");
  }
  return { method: match[1]!, target, fields: parseFieldLines(lines, 1) };
}

/**
 * Parses a response head for what relaying it needs: status, version and the
 * framing fields. The head itself is relayed as received, so other fields
 * are left alone rather than validated one by one.
 */
export function parseResponseHead(head: string): ResponseHead {
  const lines = splitHead(head);
  const match = STATUS_LINE.exec(lines[0]!);
  if (!match) throw new ProtocolError(502, "the upstream sent a malformed status line");
  const fields: Field[] = [];
  for (let index = 1; index < lines.length; index++) {
    const line = lines[index]!;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new ProtocolError(502, "the upstream sent a malformed header line");
    const key = line.slice(0, colon).toLowerCase();
    if (FRAMING_FIELDS.has(key)) fields.push({ name: line.slice(0, colon), value: line.slice(colon + 1).trim(), key });
  }
  return { version: match[1] === "0" ? "1.0" : "1.1", status: Number(match[2]), fields };
}

const FRAMING_FIELDS = new Set(["content-length", "transfer-encoding", "connection"]);

/** Parses header (or trailer) lines from `lines[from]` on; obsolete line folding and control characters are refused. */
export function parseFieldLines(lines: string[], from = 0): Field[] {
  const fields: Field[] = [];
  for (let index = from; index < lines.length; index++) {
    const match = HEADER_LINE.exec(lines[index]!);
    if (!match || CONTROL.test(match[2]!)) throw new ProtocolError(400, "malformed header line");
    fields.push({ name: match[1]!, value: match[2]!, key: match[1]!.toLowerCase() });
  }
  return fields;
}

function splitHead(head: string): string[] {
  // Without the final blank line; a bare CR or LF anywhere is refused rather than guessed at.
  const lines = head.slice(0, -4).split("\r\n");
  if (lines.some((line) => line.includes("\r") || line.includes("\n"))) throw new ProtocolError(400, "bare CR or LF in the message head");
  return lines;
}

/** Values of every field named `key` (lower case). */
export function fieldValues(fields: Field[], key: string): string[] {
  const values: string[] = [];
  for (const field of fields) if (field.key === key) values.push(field.value);
  return values;
}

/** True if a Connection header lists `option` (e.g. "close"). */
export function hasConnectionOption(fields: Field[], option: string): boolean {
  return fieldValues(fields, "connection").some((value) => value.split(",").some((item) => item.trim().toLowerCase() === option));
}

export type Framing = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" } | { kind: "close" };

/** How a request body is delimited; ambiguous framing (a smuggling vector) is refused. */
export function requestFraming(fields: Field[]): Framing {
  const transferEncodings = fieldValues(fields, "transfer-encoding");
  const lengths = fieldValues(fields, "content-length");
  if (transferEncodings.length > 0) {
    if (lengths.length > 0) throw new ProtocolError(400, "a request must not have both Transfer-Encoding and Content-Length");
    if (transferEncodings.length > 1 || transferEncodings[0]!.toLowerCase() !== "chunked") {
      throw new ProtocolError(501, "Transfer-Encoding other than chunked is not supported");
    }
    return { kind: "chunked" };
  }
  const length = contentLength(lengths);
  if (length === undefined) throw new ProtocolError(400, "invalid Content-Length");
  return length === 0 ? { kind: "none" } : { kind: "length", length };
}

/** How a response body is delimited (RFC 9112 section 6.3). */
export function responseFraming(method: string, response: ResponseHead): Framing {
  if (method === "HEAD" || response.status < 200 || response.status === 204 || response.status === 304) return { kind: "none" };
  const transferEncodings = fieldValues(response.fields, "transfer-encoding");
  if (transferEncodings.length > 0) {
    const codings = transferEncodings.join(",").split(",").map((item) => item.trim().toLowerCase());
    return codings[codings.length - 1] === "chunked" ? { kind: "chunked" } : { kind: "close" };
  }
  const lengths = fieldValues(response.fields, "content-length");
  if (lengths.length === 0) return { kind: "close" };
  const length = contentLength(lengths);
  if (length === undefined) throw new ProtocolError(502, "the upstream sent an invalid Content-Length");
  return length === 0 ? { kind: "none" } : { kind: "length", length };
}

/** The one length all Content-Length values agree on (0 if there are none), or undefined if invalid. */
function contentLength(values: string[]): number | undefined {
  const items = values.flatMap((value) => value.split(",").map((item) => item.trim()));
  if (items.length === 0) return 0;
  if (!items.every((item) => /^\d{1,15}$/.test(item) && item === items[0])) return undefined;
  return Number(items[0]);
}

/** The size of the chunk a chunk-size line announces (extensions ignored). */
export function parseChunkSize(line: string): number {
  const match = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line);
  if (!match || CONTROL.test(line)) throw new ProtocolError(400, "malformed chunk size");
  return parseInt(match[1]!, 16);
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  408: "Request Timeout",
  421: "Misdirected Request",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** A complete plain-text answer from the proxy itself; it always closes the connection. */
export function proxyResponse(status: number, message: string, extraHeaders: string[] = []): string {
  const body = `${message}\n`;
  return [
    `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}`,
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Connection: close",
    ...extraHeaders,
    "",
    body,
  ].join("\r\n");
}
