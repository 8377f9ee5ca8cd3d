/**
 * The server half of MCP's streamable HTTP transport for one client session.
 *
 * A POST's requests are answered in one JSON body when their answers are all
 * there is to say: no stream to open, frame, keep alive or parse, for the
 * client as for the gateway. The POST turns into an SSE stream the moment
 * anything else must reach the client first (progress, a log message, a
 * sampling or elicitation request relayed from a backend), or once its
 * answers take longer than `streamAfterMs`, so that a long call keeps the
 * connection busy with keep-alive comments and can be resumed with
 * Last-Event-ID. Messages related to no request go to the session's GET
 * stream. The spec lets the server choose per POST; clients must take both.
 *
 * The protocol stays with the SDK: this implements its Transport interface,
 * and incoming messages are parsed with its JSONRPCMessageSchema.
 */
import type { Transport, TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  DEFAULT_NEGOTIATED_PROTOCOL_VERSION,
  ErrorCode,
  JSONRPCMessageSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  type JSONRPCMessage,
  type MessageExtraInfo,
  type RequestId,
} from "@modelcontextprotocol/sdk/types.js";
import { jsonRpcError, sessionNotFound } from "./errors.ts";
import { SessionEventStore } from "./event-store.ts";

export interface SessionTransportOptions {
  /** Called when an initialize request assigns the session id, before it is answered. */
  onInitialized(): void;
  /** A POST still unanswered after this long turns into an SSE stream. */
  streamAfterMs?: number;
  /** How often an open SSE stream gets a comment, so that proxies do not time it out. */
  keepAliveMs?: number;
}

const STREAM_AFTER_MS = 1_000;
const KEEP_ALIVE_MS = 15_000;
/** How long an SSE client waits before reconnecting after its stream ended early. */
const RETRY_MS = 1_000;
/** Clients of this protocol version or later take a priming event (an id with empty data) as the first event. */
const PRIMING_SINCE = "2025-11-25";
/** Messages in one POST at most. */
const MAX_BATCH = 100;
/** The stream id of the session's GET stream in the event store. */
const STANDALONE = "standalone";

const SSE_HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
};

const encoder = new TextEncoder();

/** One SSE response body, with a keep-alive comment every so often until it ends. */
class SseStream {
  readonly response: Response;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private readonly keepAlive: Timer;
  private open = true;

  constructor(headers: Record<string, string>, keepAliveMs: number) {
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
      cancel: () => this.stop(),
    });
    this.response = new Response(body, { headers: { ...SSE_HEADERS, ...headers } });
    this.keepAlive = setInterval(() => this.write(": keep-alive\n\n"), keepAliveMs);
  }

  get isOpen(): boolean {
    return this.open;
  }

  message(message: JSONRPCMessage, eventId: string): void {
    this.write(`event: message\nid: ${eventId}\ndata: ${JSON.stringify(message)}\n\n`);
  }

  /** An id to resume from, and how long to wait before resuming. */
  prime(eventId: string): void {
    this.write(`id: ${eventId}\nretry: ${RETRY_MS}\ndata: \n\n`);
  }

  /**
   * Bun sends a response's headers with its first body bytes; a comment, which
   * clients ignore, gets them out before the first event.
   */
  opening(): void {
    this.write(": gigmcp\n\n");
  }

  close(): void {
    if (!this.open) return;
    this.stop();
    try {
      this.controller.close();
    } catch {
      // already closed by the client
    }
  }

  private write(text: string): void {
    if (!this.open) return;
    try {
      this.controller.enqueue(encoder.encode(text));
    } catch {
      this.stop();
    }
  }

  private stop(): void {
    this.open = false;
    clearInterval(this.keepAlive);
  }
}

/** One POST's requests, answered in JSON or on the SSE stream the POST turned into. */
interface Exchange {
  readonly streamId: string;
  readonly requestIds: RequestId[];
  readonly answers: Map<RequestId, JSONRPCMessage>;
  readonly protocolVersion: string;
  /** Answers the POST: with the JSON answers, or with the SSE stream. */
  readonly respond: (response: Response) => void;
  readonly timer: Timer;
  /** Set once the POST is an SSE stream (a resume replaces it); from then on every message is an event. */
  stream: SseStream | undefined;
}

export class SessionTransport implements Transport {
  sessionId: string | undefined;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;

  private readonly exchanges = new Map<RequestId, Exchange>();
  private readonly events = new SessionEventStore();
  private standalone: SseStream | undefined;
  private initialized = false;
  private closed = false;
  private readonly streamAfterMs: number;
  private readonly keepAliveMs: number;

  constructor(private readonly options: SessionTransportOptions) {
    this.streamAfterMs = options.streamAfterMs ?? STREAM_AFTER_MS;
    this.keepAliveMs = options.keepAliveMs ?? KEEP_ALIVE_MS;
  }

  async start(): Promise<void> {}

  async handleRequest(request: Request): Promise<Response> {
    if (this.closed) return sessionNotFound();
    switch (request.method) {
      case "POST":
        return this.handlePost(request);
      case "GET":
        return this.handleGet(request);
      case "DELETE": {
        const problem = this.checkSession(request);
        if (problem) return problem;
        await this.close();
        return new Response(null, { status: 200 });
      }
      default:
        return jsonRpcError(405, -32000, "Method not allowed: use POST, GET or DELETE", { allow: "GET, POST, DELETE" });
    }
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const answer = isAnswer(message);
    const requestId = answer ? message.id : options?.relatedRequestId;
    if (requestId === undefined) {
      if (answer) throw new Error("An answer without a request id has no stream to go to");
      const eventId = this.events.store(STANDALONE, message);
      this.standalone?.message(message, eventId);
      return;
    }
    const exchange = this.exchanges.get(requestId);
    if (!exchange) throw new Error(`No request ${String(requestId)} is open in this session`);
    if (answer) exchange.answers.set(requestId, message);
    else if (!exchange.stream) this.stream(exchange);
    if (exchange.stream) exchange.stream.message(message, this.events.store(exchange.streamId, message));
    if (exchange.answers.size === exchange.requestIds.length) this.finish(exchange);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const exchange of new Set(this.exchanges.values())) {
      clearTimeout(exchange.timer);
      if (exchange.stream) exchange.stream.close();
      else exchange.respond(sessionNotFound());
    }
    this.exchanges.clear();
    this.standalone?.close();
    this.onclose?.();
  }

  private async handlePost(request: Request): Promise<Response> {
    const accept = request.headers.get("accept") ?? "";
    if (!accept.includes("application/json") || !accept.includes("text/event-stream")) {
      return jsonRpcError(406, -32000, "Not Acceptable: accept both application/json and text/event-stream");
    }
    if (!isJsonContentType(request.headers.get("content-type"))) {
      return jsonRpcError(415, -32000, "Unsupported Media Type: send Content-Type: application/json");
    }
    let body: unknown;
    try {
      body = await request.json();
    } catch {
      return jsonRpcError(400, ErrorCode.ParseError, "Parse error: the body is not valid JSON");
    }
    const list = Array.isArray(body) ? body : [body];
    if (list.length === 0 || list.length > MAX_BATCH) {
      return jsonRpcError(400, ErrorCode.InvalidRequest, `Invalid Request: send 1 to ${MAX_BATCH} messages per POST`);
    }
    const messages: JSONRPCMessage[] = [];
    for (const item of list) {
      const parsed = JSONRPCMessageSchema.safeParse(item);
      if (!parsed.success) return jsonRpcError(400, ErrorCode.InvalidRequest, "Invalid Request: not a JSON-RPC 2.0 message");
      messages.push(parsed.data);
    }
    if (this.closed) return sessionNotFound();

    const initialize = messages.find((message) => "method" in message && message.method === "initialize");
    if (initialize) {
      if (this.initialized) return jsonRpcError(400, ErrorCode.InvalidRequest, "Invalid Request: this session is already initialized");
      if (messages.length > 1) return jsonRpcError(400, ErrorCode.InvalidRequest, "Invalid Request: initialize must be sent alone");
      this.sessionId = crypto.randomUUID();
      this.initialized = true;
      this.options.onInitialized();
    } else {
      const problem = this.checkSession(request);
      if (problem) return problem;
    }

    const requestIds = messages.flatMap((message) => ("method" in message && "id" in message ? [message.id] : []));
    if (requestIds.length === 0) {
      for (const message of messages) this.onmessage?.(message);
      return new Response(null, { status: 202 });
    }
    const reused = requestIds.find((id, index) => this.exchanges.has(id) || requestIds.indexOf(id) !== index);
    if (reused !== undefined) {
      return jsonRpcError(400, ErrorCode.InvalidRequest, `Invalid Request: request id ${JSON.stringify(reused)} is already in use in this session`);
    }
    const offered = (initialize as { params?: { protocolVersion?: unknown } } | undefined)?.params?.protocolVersion;
    const protocolVersion =
      typeof offered === "string" ? offered : (request.headers.get("mcp-protocol-version") ?? DEFAULT_NEGOTIATED_PROTOCOL_VERSION);

    const { promise, resolve } = Promise.withResolvers<Response>();
    const exchange: Exchange = {
      streamId: crypto.randomUUID(),
      requestIds,
      answers: new Map(),
      protocolVersion,
      respond: resolve,
      timer: setTimeout(() => this.stream(exchange), this.streamAfterMs),
      stream: undefined,
    };
    for (const id of requestIds) this.exchanges.set(id, exchange);
    for (const message of messages) this.onmessage?.(message);
    return promise;
  }

  private handleGet(request: Request): Response {
    if (!(request.headers.get("accept") ?? "").includes("text/event-stream")) {
      return jsonRpcError(406, -32000, "Not Acceptable: accept text/event-stream");
    }
    const problem = this.checkSession(request);
    if (problem) return problem;
    const lastEventId = request.headers.get("last-event-id");
    if (lastEventId !== null) return this.resume(lastEventId);
    if (this.standalone?.isOpen) return jsonRpcError(409, -32000, "Conflict: this session already has a GET stream open");
    this.standalone = this.openStream();
    this.standalone.opening();
    return this.standalone.response;
  }

  /** A client back after its stream broke: what it missed, then the rest of that stream as it comes. */
  private resume(lastEventId: string): Response {
    const replay = this.events.after(lastEventId);
    if (!replay) return jsonRpcError(400, -32000, "Last-Event-ID is unknown or expired: open a new GET stream without it");
    const exchange = replay.streamId === STANDALONE ? undefined : this.exchangeOf(replay.streamId);
    const current = replay.streamId === STANDALONE ? this.standalone : exchange?.stream;
    if (current?.isOpen) return jsonRpcError(409, -32000, "Conflict: that stream is still open");
    const stream = this.openStream();
    stream.opening();
    for (const event of replay.events) stream.message(event.message!, event.id);
    if (replay.streamId === STANDALONE) this.standalone = stream;
    else if (exchange) exchange.stream = stream;
    // The stream's requests are all answered: the replay was the rest of it.
    else stream.close();
    return stream.response;
  }

  /** Turns the POST into an SSE stream: from now on its messages are events. */
  private stream(exchange: Exchange): void {
    if (exchange.stream || this.closed) return;
    clearTimeout(exchange.timer);
    exchange.stream = this.openStream();
    if (exchange.protocolVersion >= PRIMING_SINCE) exchange.stream.prime(this.events.store(exchange.streamId, undefined));
    else exchange.stream.opening();
    // A batch may have some answers already: they go first.
    for (const answer of exchange.answers.values()) exchange.stream.message(answer, this.events.store(exchange.streamId, answer));
    exchange.respond(exchange.stream.response);
  }

  private finish(exchange: Exchange): void {
    clearTimeout(exchange.timer);
    for (const id of exchange.requestIds) this.exchanges.delete(id);
    if (exchange.stream) {
      exchange.stream.close();
      return;
    }
    const answers = exchange.requestIds.map((id) => exchange.answers.get(id)!);
    exchange.respond(
      new Response(JSON.stringify(answers.length === 1 ? answers[0] : answers), {
        headers: { "content-type": "application/json", ...this.sessionHeader() },
      }),
    );
  }

  private exchangeOf(streamId: string): Exchange | undefined {
    for (const exchange of this.exchanges.values()) if (exchange.streamId === streamId) return exchange;
    return undefined;
  }

  private openStream(): SseStream {
    return new SseStream(this.sessionHeader(), this.keepAliveMs);
  }

  private sessionHeader(): Record<string, string> {
    return this.sessionId === undefined ? {} : { "mcp-session-id": this.sessionId };
  }

  /** A request after initialize must name this session and, if it names one, a protocol version this side speaks. */
  private checkSession(request: Request): Response | undefined {
    if (!this.initialized) return jsonRpcError(400, -32000, "Bad Request: send initialize first");
    const sessionId = request.headers.get("mcp-session-id");
    if (sessionId === null) return jsonRpcError(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    if (sessionId !== this.sessionId) return sessionNotFound();
    const version = request.headers.get("mcp-protocol-version");
    if (version !== null && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      return jsonRpcError(400, -32000, `Bad Request: unsupported MCP-Protocol-Version ${version} (supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(", ")})`);
    }
    return undefined;
  }
}

function isAnswer(message: JSONRPCMessage): message is JSONRPCMessage & { id: RequestId } {
  return "result" in message || "error" in message;
}

/** Content-Type's media type, not a substring: "application/json; charset=utf-8" yes, "application/jsonx" no. */
function isJsonContentType(contentType: string | null): boolean {
  return contentType?.split(";", 1)[0]!.trim().toLowerCase() === "application/json";
}
