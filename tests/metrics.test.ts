/**
 * Observability against a real gateway: /metrics behind its token, tool call
 * counters and histograms, one "tool.call" audit event per call (never its
 * arguments or result), the request id from HTTP through the logs, the audit
 * record and a backend's egress, and /readyz failing on a closed database.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLogger } from "../src/log/index.ts";
import { startEchoEgress } from "./helpers/echo-egress.ts";
import { auditEventually, connect, startTestGateway, text, type TestGateway } from "./helpers/gateway.ts";

const METRICS_TOKEN = "metrics-token-0123456789abcdef0123456789";

let gw: TestGateway;
let token: string;
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  gw = await startTestGateway(
    { GIG_METRICS_TOKEN: METRICS_TOKEN, GIG_CALL_TIMEOUT: "3s" },
    { log: createLogger("info", {}, (line) => logLines.push(JSON.parse(line))) },
  );
  token = await gw.profile("observed", ["echo"]);
});

afterAll(async () => {
  await gw?.close();
});

async function scrape(bearer = METRICS_TOKEN): Promise<Response> {
  return fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${bearer}` } });
}

/** The value of the sample `name` whose labels include `labels` (0 when absent). */
async function sample(name: string, labels: Record<string, string> = {}): Promise<number> {
  const body = await (await scrape()).text();
  for (const line of body.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map(([, key, value]) => [key, value]));
    if (Object.entries(labels).every(([key, value]) => present[key] === value)) return Number(match[3]);
  }
  return 0;
}

function withRequestId(id: string) {
  return connect(`${gw.url}/mcp/p/observed`, token, {}, { headers: { "x-request-id": id } });
}

describe("/metrics", () => {
  test("is refused without the token or with a wrong one", async () => {
    const missing = await fetch(`${gw.url}/metrics`);
    const wrong = await scrape("metrics-token-wrong-wrong-wrong-wrong-wrong");
    expect([missing.status, wrong.status]).toEqual([401, 401]);
    expect(missing.headers.get("www-authenticate")).toStartWith("Bearer");
    expect(await wrong.text()).not.toContain("gigmcp_");
  });

  test("does not exist when GIG_METRICS_TOKEN is unset", async () => {
    const plain = await startTestGateway();
    try {
      const response = await fetch(`${plain.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      expect(response.status).toBe(404);
    } finally {
      await plain.close();
    }
  });

  test("counts a tool call by server, tool and outcome, with its latency, the spawn, HTTP, DB and process metrics", async () => {
    const calls = { server: "echo", tool: "echo", outcome: "ok" };
    const before = { calls: await sample("gigmcp_tool_calls_total", calls), latency: await sample("gigmcp_tool_call_duration_seconds_count", { server: "echo" }) };
    const client = await withRequestId("metrics-call-1");
    expect(text(await client.callTool({ name: "echo_echo", arguments: { message: "hi" } }))).toBe("hi");
    await client.close();

    expect(await sample("gigmcp_tool_calls_total", calls)).toBe(before.calls + 1);
    expect(await sample("gigmcp_tool_call_duration_seconds_count", { server: "echo" })).toBe(before.latency + 1);
    expect(await sample("gigmcp_sandboxes_running")).toBeGreaterThanOrEqual(1);
    expect(await sample("gigmcp_sandbox_spawn_duration_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(await sample("gigmcp_http_requests_total", { route: "/mcp/p/:profile", method: "POST", status: "200" })).toBeGreaterThanOrEqual(1);
    expect(await sample("gigmcp_db_query_duration_seconds_count", { operation: "tokens.resolve" })).toBeGreaterThanOrEqual(1);
    expect(await sample("gigmcp_vault_operations_total", { op: "seal", outcome: "ok" })).toBeGreaterThanOrEqual(1);
    expect(await sample("gigmcp_process_resident_memory_bytes")).toBeGreaterThan(0);
    // Route templates only: no profile name, token or path of a request becomes a label.
    expect(await (await scrape()).text()).not.toContain("observed");
  });

  test("an unknown tool is counted as denied without its name as a label", async () => {
    const before = await sample("gigmcp_tool_calls_total", { server: "echo", tool: "(unknown)", outcome: "denied" });
    const client = await withRequestId("metrics-denied-1");
    await expect(client.callTool({ name: "echo_no-such-tool-xyz", arguments: {} })).rejects.toThrow("Unknown tool");
    await client.close();
    expect(await sample("gigmcp_tool_calls_total", { server: "echo", tool: "(unknown)", outcome: "denied" })).toBe(before + 1);
    expect(await (await scrape()).text()).not.toContain("no-such-tool-xyz");
    const [event] = await auditEventually(gw.store, { action: "tool.call", decision: "deny", limit: 1 }, (found) => found.detail.requestId === "metrics-denied-1");
    expect(event).toMatchObject({ actor: "echo", tenantId: gw.admin.id, detail: { profile: "observed", tool: "echo_no-such-tool-xyz", outcome: "denied", requestId: "metrics-denied-1" } });
  });

  test("a call past its deadline is a timeout, one the client gives up on is cancelled", async () => {
    const before = {
      timeout: await sample("gigmcp_tool_calls_total", { server: "echo", tool: "slow", outcome: "timeout" }),
      cancelled: await sample("gigmcp_tool_calls_total", { server: "echo", tool: "slow", outcome: "cancelled" }),
    };
    const client = await withRequestId("metrics-slow-1");
    await expect(client.callTool({ name: "echo_slow", arguments: { seconds: 30, steps: 1 } })).rejects.toThrow("did not answer within 3s");
    const abort = new AbortController();
    const cancelled = client.callTool({ name: "echo_slow", arguments: { seconds: 30, steps: 1 } }, undefined, { signal: abort.signal });
    await Bun.sleep(200);
    abort.abort();
    await expect(cancelled).rejects.toThrow();
    const deadline = Date.now() + 5_000;
    while ((await sample("gigmcp_tool_calls_total", { server: "echo", tool: "slow", outcome: "cancelled" })) === before.cancelled && Date.now() < deadline) await Bun.sleep(50);
    await client.close();
    expect(await sample("gigmcp_tool_calls_total", { server: "echo", tool: "slow", outcome: "timeout" })).toBe(before.timeout + 1);
    expect(await sample("gigmcp_tool_calls_total", { server: "echo", tool: "slow", outcome: "cancelled" })).toBe(before.cancelled + 1);
  });
});

describe("tool.call audit and request ids", () => {
  test("one audit event per call, with profile, tool, outcome, latency and request id, never arguments or result", async () => {
    const client = await withRequestId("audit-call-7");
    await client.callTool({ name: "echo_echo", arguments: { message: "argument-that-must-not-be-recorded" } });
    await client.close();
    const events = await auditEventually(gw.store, { action: "tool.call", limit: 1000 }, (event) => event.detail.requestId === "audit-call-7");
    const mine = events.filter((event) => event.detail.requestId === "audit-call-7");
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ action: "tool.call", decision: "allow", actor: "echo", tenantId: gw.admin.id, detail: { profile: "observed", tool: "echo", outcome: "ok" } });
    expect(mine[0]!.detail.latencyMs).toBeGreaterThanOrEqual(0);
    expect(JSON.stringify(events)).not.toContain("argument-that-must-not-be-recorded");
  });

  test("a valid X-Request-Id comes back and is in the call's log line; an invalid one is replaced", async () => {
    const kept = await fetch(`${gw.url}/healthz`, { headers: { "x-request-id": "client.id_1-A" } });
    expect(kept.headers.get("x-request-id")).toBe("client.id_1-A");
    for (const offered of ["has space", "x".repeat(129), "semi;colon"]) {
      const replaced = await fetch(`${gw.url}/healthz`, { headers: { "x-request-id": offered } });
      expect(replaced.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    }
    const generated = await fetch(`${gw.url}/mcp/p/observed`, { method: "POST", body: "{}" });
    expect(generated.status).toBe(401);
    expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);

    const client = await withRequestId("log-call-3");
    await client.callTool({ name: "echo_add", arguments: { a: 1, b: 2 } });
    await client.close();
    expect(logLines).toContainEqual(expect.objectContaining({ msg: "tool call", requestId: "log-call-3", server: "echo", tool: "add", outcome: "ok" }));
    // A backend outlives the request that started it: its own lines carry no request id.
    const started = logLines.find((line) => line.msg === "backend started");
    expect(started).toBeDefined();
    expect(logLines.filter((line) => line.msg === "backend stderr" || line.msg === "backend stopped").every((line) => line.requestId === undefined)).toBe(true);
  });

  test("egress decided while a call is in flight names its request id; egress outside calls names none", async () => {
    const { egress, connectThroughProxy } = await startEchoEgress(gw);
    try {
      const client = await withRequestId("egress-call-5");
      const slow = client.callTool({ name: "echo_slow", arguments: { seconds: 1.5, steps: 1 } });
      await Bun.sleep(300);
      expect(await connectThroughProxy("during.example.com")).toContain("403");
      await slow;
      await client.close();
      expect(await connectThroughProxy("after.example.com")).toContain("403");
      const events = await auditEventually(gw.store, { action: "egress", limit: 10 }, (event) => event.detail.host === "after.example.com");
      expect(events.find((event) => event.detail.host === "during.example.com")?.detail).toMatchObject({ reason: "not allowlisted", requestIds: ["egress-call-5"] });
      expect(events.find((event) => event.detail.host === "after.example.com")?.detail.requestIds).toBeUndefined();
      expect(await sample("gigmcp_egress_decisions_total", { decision: "deny", reason: "not allowlisted" })).toBeGreaterThanOrEqual(2);
    } finally {
      await egress.stop();
    }
  });
});

describe("probes", () => {
  test("/healthz is live and /readyz ready while the database answers", async () => {
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${gw.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready", checks: { database: "ok", egress: "ok" } });
  });

  test("/readyz is 503 naming the failing check once the database is closed", async () => {
    const doomed = await startTestGateway();
    try {
      doomed.store.close();
      const response = await fetch(`${doomed.url}/readyz`);
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({ status: "not ready", checks: { database: "failing", egress: "ok" } });
      expect((await fetch(`${doomed.url}/healthz`)).status).toBe(200);
    } finally {
      await doomed.close().catch(() => undefined);
    }
  });
});
