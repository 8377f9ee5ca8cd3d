/**
 * The gateway's streamable HTTP server transport on its own: an SDK Server
 * behind it on a loopback Bun.serve, driven by raw fetches (to see the wire)
 * and by the SDK's Client (to see that a real client takes every answer).
 * The spec lets a server answer each POST in JSON or SSE; this one answers in
 * JSON unless something must be sent first or the answer is slow.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ElicitRequestSchema, ElicitResultSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { SessionTransport } from "../src/gateway/http-transport.ts";

const STREAM_AFTER_MS = 150;
const KEEP_ALIVE_MS = 40;

/** Calls of the "held" tool wait here until the test releases them. */
const held = new Map<string, () => void>();
const transports = new Map<string, SessionTransport>();
let server: ReturnType<typeof Bun.serve>;
let url: string;

function createServer(): Server {
  const mcp = new Server({ name: "transport-test", version: "1" }, { capabilities: { tools: {} } });
  mcp.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [] }));
  mcp.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const args = request.params.arguments ?? {};
    switch (request.params.name) {
      case "quick":
        return { content: [{ type: "text", text: "quick" }] };
      case "progress":
        await extra.sendNotification({ method: "notifications/progress", params: { progressToken: extra._meta?.progressToken ?? 0, progress: 1, total: 2 } });
        return { content: [{ type: "text", text: "progressed" }] };
      case "held":
        await new Promise<void>((resolve) => held.set(String(args.key), resolve));
        return { content: [{ type: "text", text: `released ${String(args.key)}` }] };
      case "ask": {
        const answer = await extra.sendRequest(
          { method: "elicitation/create", params: { mode: "form", message: "Name?", requestedSchema: { type: "object", properties: { name: { type: "string" } } } } },
          ElicitResultSchema,
        );
        return { content: [{ type: "text", text: `hello ${String(answer.content?.name)}` }] };
      }
      default:
        throw new Error(`no tool ${request.params.name}`);
    }
  });
  return mcp;
}

beforeAll(() => {
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(request) {
      const id = request.headers.get("mcp-session-id");
      if (id !== null) return transports.get(id)?.handleRequest(request) ?? new Response("unknown session", { status: 404 });
      const transport: SessionTransport = new SessionTransport({
        onInitialized: () => transports.set(transport.sessionId!, transport),
        streamAfterMs: STREAM_AFTER_MS,
        keepAliveMs: KEEP_ALIVE_MS,
      });
      await createServer().connect(transport);
      return transport.handleRequest(request);
    },
  });
  url = `http://127.0.0.1:${server.port}/mcp`;
});

afterAll(async () => {
  for (const transport of transports.values()) await transport.close();
  await server?.stop(true);
});

const JSON_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };

function post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: "POST", headers: { ...JSON_HEADERS, ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
}

/** A raw initialized session: its headers for later requests. */
async function session(protocolVersion = "2025-11-25"): Promise<Record<string, string>> {
  const response = await post({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion, capabilities: { elicitation: {} }, clientInfo: { name: "raw", version: "1" } } });
  expect(response.headers.get("content-type")).toBe("application/json");
  const headers = { "mcp-session-id": response.headers.get("mcp-session-id")!, "mcp-protocol-version": protocolVersion };
  expect((await post({ jsonrpc: "2.0", method: "notifications/initialized" }, headers)).status).toBe(202);
  return headers;
}

const call = (id: number, name: string, args: Record<string, unknown> = {}, meta?: Record<string, unknown>) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, arguments: args, ...(meta && { _meta: meta }) },
});

interface RpcErrorBody {
  error: { code: number; message: string };
}

interface SseEvent {
  id?: string;
  retry?: string;
  data?: string;
  comment?: string;
}

const readerOf = (body: ReadableStream<Uint8Array>) => body.getReader();

/** Reads SSE events off a response body. */
class SseReader {
  readonly events: SseEvent[] = [];
  private readonly reader: ReturnType<typeof readerOf>;
  private readonly decoder = new TextDecoder();
  private buffer = "";

  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = readerOf(body);
  }

  /** Reads until `enough` holds for the events so far, or to the end of the stream (the default); returns all events read. */
  async read(enough: (events: SseEvent[]) => boolean = () => false): Promise<SseEvent[]> {
    while (!enough(this.events)) {
      const { done, value } = await this.reader.read();
      if (done) break;
      this.buffer += this.decoder.decode(value, { stream: true });
      let end: number;
      while ((end = this.buffer.indexOf("\n\n")) >= 0) {
        this.events.push(parseEvent(this.buffer.slice(0, end)));
        this.buffer = this.buffer.slice(end + 2);
      }
    }
    return this.events;
  }

  cancel(): Promise<void> {
    return this.reader.cancel();
  }
}

function parseEvent(block: string): SseEvent {
  const event: SseEvent = {};
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) {
      event.comment = line.slice(1).trim();
      continue;
    }
    const colon = line.indexOf(":");
    const field = line.slice(0, colon);
    if (field === "id" || field === "retry" || field === "data") event[field] = line.slice(colon + 1).trimStart();
  }
  return event;
}

const messages = (events: SseEvent[]) => events.filter((event) => event.data).map((event) => JSON.parse(event.data!));

async function until(done: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}

describe("how a POST is answered", () => {
  test("an answer with nothing before it is one JSON body", async () => {
    const headers = await session();
    const response = await post(call(1, "quick"), headers);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(response.headers.get("mcp-session-id")).toBe(headers["mcp-session-id"]!);
    expect(await response.json()).toEqual({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text: "quick" }] } });
  });

  test("a notification sent before the answer turns the POST into a stream: priming event, the notification, the answer, the end", async () => {
    const headers = await session();
    const response = await post(call(2, "progress", {}, { progressToken: "t" }), headers);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const events = await new SseReader(response.body!).read();
    expect(events[0]).toMatchObject({ data: "", retry: "1000" });
    expect(events[0]!.id).toBeString();
    expect(messages(events).map((message) => message.method ?? message.id)).toEqual(["notifications/progress", 2]);
    expect(messages(events)[1].result.content[0].text).toBe("progressed");
    expect(new Set(events.map((event) => event.id)).size).toBe(events.length);
  });

  test("clients of protocol versions before 2025-11-25 get no priming event", async () => {
    const headers = await session("2025-03-26");
    const response = await post(call(3, "progress", {}, { progressToken: "t" }), headers);
    const events = await new SseReader(response.body!).read();
    expect(events[0]).toEqual({ comment: "gigmcp" });
    expect(events.some((event) => event.data === "")).toBe(false);
    expect(messages(events).map((message) => message.method ?? message.id)).toEqual(["notifications/progress", 3]);
  });

  test("an answer slower than the threshold streams, with keep-alive comments, and ends with the answer", async () => {
    const headers = await session();
    const started = performance.now();
    const response = await post(call(4, "held", { key: "slow" }), headers);
    expect(performance.now() - started).toBeGreaterThanOrEqual(STREAM_AFTER_MS - 5);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const stream = new SseReader(response.body!);
    await stream.read((seen) => seen.some((event) => event.comment === "keep-alive"));
    held.get("slow")!();
    expect(messages(await stream.read()).at(-1).result.content[0].text).toBe("released slow");
  });

  test("a batch is answered with an array in request order, and a stream gets answers that came before it", async () => {
    const headers = await session();
    const batch = await post([call(5, "quick"), call(6, "quick")], headers);
    expect(((await batch.json()) as { id: number }[]).map((answer) => answer.id)).toEqual([5, 6]);

    const mixed = await post([call(7, "quick"), call(8, "progress", {}, { progressToken: "m" })], headers);
    const events = await new SseReader(mixed.body!).read();
    expect(messages(events).map((message) => message.id ?? message.method).sort()).toEqual([7, 8, "notifications/progress"].sort());
  });

  test("a request id still in flight cannot be reused in the session", async () => {
    const headers = await session();
    const first = post(call(9, "held", { key: "reuse" }), headers);
    await until(() => held.has("reuse"));
    const second = await post(call(9, "quick"), headers);
    expect(second.status).toBe(400);
    expect(((await second.json()) as RpcErrorBody).error.message).toContain("request id 9 is already in use");
    held.get("reuse")!();
    await (await first).text();
    expect((await post(call(9, "quick"), headers)).status).toBe(200);
  });
});

describe("GET streams and resuming", () => {
  test("messages related to no request go to the GET stream; a second GET stream is refused", async () => {
    const headers = await session();
    const stream = await fetch(url, { headers: { ...headers, accept: "text/event-stream" } });
    expect(stream.headers.get("content-type")).toBe("text/event-stream");
    expect((await fetch(url, { headers: { ...headers, accept: "text/event-stream" } })).status).toBe(409);
    await transports.get(headers["mcp-session-id"]!)!.send({ jsonrpc: "2.0", method: "notifications/tools/list_changed" });
    const reader = new SseReader(stream.body!);
    const events = await reader.read((seen) => messages(seen).length > 0);
    expect(events[0]).toEqual({ comment: "gigmcp" });
    expect(messages(events)[0].method).toBe("notifications/tools/list_changed");
    await reader.cancel();
    await Bun.sleep(20);
    const again = await fetch(url, { headers: { ...headers, accept: "text/event-stream" } });
    expect(again.status).toBe(200);
    await again.body?.cancel();
  });

  test("a client whose stream broke resumes with Last-Event-ID and gets the answer it missed", async () => {
    const headers = await session();
    const response = await post(call(10, "held", { key: "resume" }), headers);
    const reader = new SseReader(response.body!);
    const lastEventId = (await reader.read((seen) => seen.length > 0))[0]!.id!;
    await reader.cancel();
    held.get("resume")!();
    await Bun.sleep(20);
    const resumed = await fetch(url, { headers: { ...headers, accept: "text/event-stream", "last-event-id": lastEventId } });
    expect(resumed.status).toBe(200);
    expect(messages(await new SseReader(resumed.body!).read()).map((message) => message.id)).toEqual([10]);
  });

  test("a resume while the request still runs gets the answer when it comes", async () => {
    const headers = await session();
    const response = await post(call(11, "held", { key: "live" }), headers);
    const reader = new SseReader(response.body!);
    const lastEventId = (await reader.read((seen) => seen.length > 0))[0]!.id!;
    await reader.cancel();
    await Bun.sleep(20);
    const resumed = await fetch(url, { headers: { ...headers, accept: "text/event-stream", "last-event-id": lastEventId } });
    held.get("live")!();
    expect(messages(await new SseReader(resumed.body!).read()).at(-1).result.content[0].text).toBe("released live");
  });

  test("an unknown Last-Event-ID is refused", async () => {
    const headers = await session();
    const response = await fetch(url, { headers: { ...headers, accept: "text/event-stream", "last-event-id": "999.nowhere" } });
    expect(response.status).toBe(400);
  });
});

describe("refused requests", () => {
  test("each header or body problem gets its status and a JSON-RPC error saying what to send", async () => {
    const headers = await session();
    const transport = transports.get(headers["mcp-session-id"]!)!;
    const cases: [Promise<Response>, number][] = [
      [fetch(url, { method: "POST", headers: { ...JSON_HEADERS, ...headers, accept: "application/json" }, body: JSON.stringify(call(20, "quick")) }), 406],
      [fetch(url, { method: "POST", headers: { ...JSON_HEADERS, ...headers, "content-type": "text/plain" }, body: JSON.stringify(call(21, "quick")) }), 415],
      [post("{not json", headers), 400],
      [post({ jsonrpc: "1.0", id: 22, method: "tools/call" }, headers), 400],
      [post([], headers), 400],
      [post(call(23, "quick"), { ...headers, "mcp-protocol-version": "1999-01-01" }), 400],
      // Asked of the transport itself: this test's server routes a session id it does not know nowhere.
      [transport.handleRequest(new Request(url, { method: "POST", headers: { ...JSON_HEADERS, ...headers, "mcp-session-id": "another" }, body: JSON.stringify(call(24, "quick")) })), 404],
      [fetch(url, { method: "PUT", headers }), 405],
      [fetch(url, { headers: { ...headers, accept: "application/json" } }), 406],
    ];
    for (const [pending, status] of cases) {
      const response = await pending;
      expect(response.status).toBe(status);
      expect(((await response.json()) as RpcErrorBody).error.message).toMatch(/^[A-Z][\w ]+: /);
    }
    expect((await post({ jsonrpc: "2.0", id: 25, method: "initialize", params: {} }, headers)).status).toBe(400);
  });

  test("DELETE ends the session: a POST waiting for its answer gets 404, later requests too", async () => {
    const headers = await session();
    const waiting = post(call(30, "held", { key: "deleted" }), headers);
    await until(() => held.has("deleted"));
    expect((await fetch(url, { method: "DELETE", headers })).status).toBe(200);
    expect((await waiting).status).toBe(404);
    expect((await transports.get(headers["mcp-session-id"]!)!.handleRequest(new Request(url, { method: "POST", headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(call(31, "quick")) }))).status).toBe(404);
  });
});

describe("with the SDK's client", () => {
  test("plain calls, progress and an elicitation all reach a real client", async () => {
    const client = new Client({ name: "sdk", version: "1" }, { capabilities: { elicitation: {} } });
    client.setRequestHandler(ElicitRequestSchema, () => ({ action: "accept", content: { name: "Ada" } }));
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    const progress: number[] = [];
    expect(await client.callTool({ name: "quick" })).toMatchObject({ content: [{ text: "quick" }] });
    expect(await client.callTool({ name: "progress" }, undefined, { onprogress: (update) => progress.push(update.progress) })).toMatchObject({
      content: [{ text: "progressed" }],
    });
    expect(progress).toEqual([1]);
    expect(await client.callTool({ name: "ask" })).toMatchObject({ content: [{ text: "hello Ada" }] });
    await client.close();
  });
});
