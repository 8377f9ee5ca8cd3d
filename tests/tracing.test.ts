/**
 * OpenTelemetry traces against a real gateway and a real OTLP/HTTP receiver
 * on loopback: the spans of an HTTP request, its tool call, the backend start
 * it caused and the egress decided while it was in flight, with their
 * parents; the trace id on the request's log lines; the collector's
 * credentials sent but never logged; no argument values anywhere; and
 * nothing at all exported when GIG_OTEL_ENDPOINT is unset.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../src/config/index.ts";
import { createLogger } from "../src/log/index.ts";
import { startTracing, stopTracing } from "../src/tracing/index.ts";
import { startEchoEgress } from "./helpers/echo-egress.ts";
import { connect, startTestGateway, text, type TestGateway } from "./helpers/gateway.ts";

const COLLECTOR_SECRET = "collector-secret-4b1d";
/** An argument value that must never reach a span. */
const ARGUMENT = "argument-value-9c2e7";

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: { key: string; value: Record<string, unknown> }[];
  links: { traceId: string; spanId: string }[];
  status: { code?: number };
}

/** What the receiver was sent: raw bodies (to search for leaks) and their authorization headers. */
const exports: { body: string; authorization: string | null }[] = [];
const receiver = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(request) {
    if (request.method !== "POST" || new URL(request.url).pathname !== "/v1/traces") return new Response("Not Found", { status: 404 });
    exports.push({ body: await request.text(), authorization: request.headers.get("authorization") });
    return Response.json({});
  },
});

let gw: TestGateway;
let token: string;
/** A caller's trace and span, as its W3C traceparent names them. */
const REMOTE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const REMOTE_SPAN = "00f067aa0ba902b7";
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  gw = await startTestGateway({ GIG_CALL_TIMEOUT: "5s" }, { log: createLogger("info", {}, (line) => logLines.push(JSON.parse(line))) });
  token = await gw.profile("traced", ["echo"]);
});

afterAll(async () => {
  await stopTracing();
  await gw?.close();
  receiver.stop(true);
});

function spansOf(bodies: typeof exports): { spans: ExportedSpan[]; resource: Record<string, unknown> } {
  const spans: ExportedSpan[] = [];
  let resource: Record<string, unknown> = {};
  for (const { body } of bodies) {
    for (const resourceSpans of JSON.parse(body).resourceSpans) {
      resource = Object.fromEntries(resourceSpans.resource.attributes.map((attribute: ExportedSpan["attributes"][number]) => [attribute.key, Object.values(attribute.value)[0]]));
      for (const scope of resourceSpans.scopeSpans) spans.push(...scope.spans);
    }
  }
  return { spans, resource };
}

function attributesOf(span: ExportedSpan): Record<string, unknown> {
  return Object.fromEntries(span.attributes.map((attribute) => [attribute.key, Object.values(attribute.value)[0]]));
}

function client(requestId: string) {
  return connect(`${gw.url}/mcp/p/traced`, token, {}, { headers: { "x-request-id": requestId } });
}

describe("GIG_OTEL_ENDPOINT unset", () => {
  test("exports nothing and logs no trace id", async () => {
    startTracing(loadConfig({}).otel, "test", createLogger("error"));
    const caller = await client("untraced-call-1");
    expect(text(await caller.callTool({ name: "echo_echo", arguments: { message: ARGUMENT } }))).toBe(ARGUMENT);
    await caller.close();
    await stopTracing();
    await Bun.sleep(200);
    expect(exports).toEqual([]);
    const line = logLines.find((entry) => entry.msg === "tool call" && entry.requestId === "untraced-call-1");
    expect(line).toBeDefined();
    expect(line!.traceId).toBeUndefined();
  });
});

describe("GIG_OTEL_ENDPOINT set", () => {
  test("a collector refusing the export gets a warning in the log, without its credentials", async () => {
    const warnings: Record<string, unknown>[] = [];
    const config = loadConfig({ GIG_OTEL_ENDPOINT: `${receiver.url.origin}/elsewhere`, GIG_OTEL_HEADERS: `authorization=Bearer%20${COLLECTOR_SECRET}` });
    startTracing(config.otel, "test", createLogger("warn", {}, (line) => warnings.push(JSON.parse(line))));
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    // The request's span ends just after its answer is sent.
    await Bun.sleep(100);
    await stopTracing();
    expect(warnings).toContainEqual(expect.objectContaining({ level: "warn", msg: "could not export traces to GIG_OTEL_ENDPOINT" }));
    expect(JSON.stringify(warnings)).not.toContain(COLLECTOR_SECRET);
    expect(exports).toEqual([]);
  });

  test("a bad GIG_OTEL_HEADERS is refused without repeating it, and headers need an endpoint", () => {
    let refusal: unknown;
    try {
      loadConfig({ GIG_OTEL_ENDPOINT: receiver.url.origin, GIG_OTEL_HEADERS: `authorization ${COLLECTOR_SECRET}` });
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(ConfigError);
    expect((refusal as Error).message).toContain("GIG_OTEL_HEADERS");
    expect((refusal as Error).message).not.toContain(COLLECTOR_SECRET);
    expect(() => loadConfig({ GIG_OTEL_HEADERS: "authorization=x" })).toThrow("GIG_OTEL_ENDPOINT");
    expect(() => loadConfig({ GIG_OTEL_ENDPOINT: "ftp://collector:4318" })).toThrow("GIG_OTEL_ENDPOINT");
  });

  test("spans of a request, its tool call, the backend start and egress arrive linked, with the collector's headers", async () => {
    // A backend started now, under tracing, shows its spawn.
    const echo = await gw.store.servers.get("echo");
    const running = gw.gateway.supervisor.find(echo.id, gw.admin.id);
    if (running) await gw.gateway.supervisor.stop(running);
    const config = loadConfig({
      GIG_DATA_DIR: gw.dataDir,
      GIG_OTEL_ENDPOINT: receiver.url.origin,
      GIG_OTEL_HEADERS: `authorization=Bearer%20${COLLECTOR_SECRET}`,
    });
    startTracing(config.otel, "9.8.7", createLogger("info", {}, (line) => logLines.push(JSON.parse(line))));

    const { egress, connectThroughProxy } = await startEchoEgress(gw);

    try {
      const caller = await client("traced-call-1");
      expect(text(await caller.callTool({ name: "echo_echo", arguments: { message: ARGUMENT } }))).toBe(ARGUMENT);
      const slow = caller.callTool({ name: "echo_slow", arguments: { seconds: 1.5, steps: 1 } });
      await Bun.sleep(300);
      expect(await connectThroughProxy("during.example.com")).toContain("403");
      await slow;
      // Two calls in flight: the egress cannot tell which caused it, so it is linked to both.
      const other = await client("traced-call-2");
      const both = [caller, other].map((each) => each.callTool({ name: "echo_slow", arguments: { seconds: 1.5, steps: 1 } }));
      await Bun.sleep(300);
      expect(await connectThroughProxy("both.example.com")).toContain("403");
      await Promise.all(both);
      await Promise.all([caller.close(), other.close()]);
      expect(await connectThroughProxy("after.example.com")).toContain("403");
      // A caller that sends a W3C traceparent gets its request span inside its own trace.
      const continued = await connect(`${gw.url}/mcp/p/traced`, token, {}, { headers: { "x-request-id": "traced-call-3", traceparent: `00-${REMOTE_TRACE}-${REMOTE_SPAN}-01` } });
      await continued.close();
    } finally {
      await egress.stop();
    }
    await stopTracing();

    expect(exports.length).toBeGreaterThan(0);
    expect(exports.every((sent) => sent.authorization === `Bearer ${COLLECTOR_SECRET}`)).toBe(true);
    expect(exports.some((sent) => sent.body.includes(ARGUMENT))).toBe(false);
    expect(logLines.some((line) => JSON.stringify(line).includes(COLLECTOR_SECRET))).toBe(false);

    const { spans, resource } = spansOf(exports);
    expect(resource).toMatchObject({ "service.name": "gigmcp", "service.version": "9.8.7" });
    const byId = new Map(spans.map((span) => [span.spanId, span]));
    const toolCalls = spans.filter((span) => span.name === "tools/call");
    const echoCall = toolCalls.find((span) => attributesOf(span)["gigmcp.tool"] === "echo")!;
    const slowCalls = toolCalls.filter((span) => attributesOf(span)["gigmcp.tool"] === "slow");
    const slowCall = slowCalls[0]!;
    const concurrentCalls = slowCalls.slice(1);
    expect(attributesOf(echoCall)).toMatchObject({ "mcp.method.name": "tools/call", "gigmcp.server": "echo", "gigmcp.outcome": "ok" });
    expect(slowCall).toBeDefined();
    expect(concurrentCalls).toHaveLength(2);

    // The tool call is a child of its HTTP request's span, in the same trace.
    const request = byId.get(echoCall.parentSpanId!)!;
    expect(request.name).toBe("POST /mcp/p/:profile");
    expect(request.traceId).toBe(echoCall.traceId);
    expect(request.parentSpanId ?? "").toBe("");
    expect(attributesOf(request)).toMatchObject({ "http.request.method": "POST", "http.route": "/mcp/p/:profile", "http.response.status_code": 200, "gigmcp.request_id": "traced-call-1" });

    const continuedRequest = spans.find((span) => attributesOf(span)["gigmcp.request_id"] === "traced-call-3")!;
    expect({ traceId: continuedRequest.traceId, parentSpanId: continuedRequest.parentSpanId }).toEqual({ traceId: REMOTE_TRACE, parentSpanId: REMOTE_SPAN });

    // The first call started the backend: the spawn is the call's child.
    const spawn = spans.find((span) => span.name === "backend.spawn")!;
    expect(spawn.parentSpanId).toBe(echoCall.spanId);
    expect(attributesOf(spawn)).toMatchObject({ "gigmcp.server": "echo", "gigmcp.sandbox": "plain" });

    // Egress while the slow call was in flight is its child; egress between calls is a trace of its own.
    const egressSpans = spans.filter((span) => span.name === "egress");
    const during = egressSpans.find((span) => attributesOf(span)["server.address"] === "during.example.com")!;
    const after = egressSpans.find((span) => attributesOf(span)["server.address"] === "after.example.com")!;
    expect(during.parentSpanId).toBe(slowCall.spanId);
    expect(during.traceId).toBe(slowCall.traceId);
    expect(attributesOf(during)).toMatchObject({ "gigmcp.egress.decision": "deny", "gigmcp.egress.reason": "not allowlisted", "gigmcp.server": "echo", "server.port": 443 });
    const ambiguous = egressSpans.find((span) => attributesOf(span)["server.address"] === "both.example.com")!;
    expect(ambiguous.parentSpanId ?? "").toBe("");
    expect(ambiguous.links.map((link) => link.spanId).sort()).toEqual(concurrentCalls.map((span) => span.spanId).sort());
    expect(after.parentSpanId ?? "").toBe("");
    expect(after.links).toEqual([]);
    expect(after.traceId).not.toBe(slowCall.traceId);

    // The request's log lines carry its trace id.
    const logged = logLines.find((line) => line.msg === "tool call" && line.requestId === "traced-call-1" && line.tool === "echo");
    expect(logged?.traceId).toBe(echoCall.traceId);
  });
});
