/**
 * Two gateway instances on one database, as behind a load balancer: a change
 * made through one is served by the other within its poll interval (the
 * store's change counter), a session one instance never saw gets the spec's
 * 404 so the client starts a new one, and sandboxes stay per instance. Runs
 * on SQLite in the core suite and on Postgres in the postgres suite.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { connect, probeSpec, startTestGateway, text, type TestGateway } from "./helpers/gateway.ts";

// One keyring for both, as every instance of a deployment has.
const MASTER_KEY = `k1:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;

let first: TestGateway;
let second: TestGateway;
let token: string;
const clients: Client[] = [];

beforeAll(async () => {
  first = await startTestGateway({ GIG_MASTER_KEY: MASTER_KEY });
  second = await startTestGateway({ GIG_MASTER_KEY: MASTER_KEY }, { sameDatabaseAs: first });
  await first.addServer(probeSpec("probe"));
  token = await first.profile("main", ["echo"]);
});

afterAll(async () => {
  for (const client of clients) await client.close();
  await second?.close();
  await first?.close();
});

async function client(gateway: TestGateway): Promise<Client> {
  const connected = await connect(`${gateway.url}/mcp/p/main`, token);
  clients.push(connected);
  return connected;
}

test("a token made through one instance works on the other", async () => {
  const onSecond = await client(second);
  expect(text(await onSecond.callTool({ name: "echo_echo", arguments: { message: "hello from the other one" } }))).toBe("hello from the other one");
});

test("a change made through one instance reaches the other's sessions within a second", async () => {
  const onSecond = await client(second);
  expect((await onSecond.listTools()).tools.map((tool) => tool.name)).not.toContain("probe_echo");
  const changed = new Promise<number>((resolve) => onSecond.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve(performance.now())));
  const profile = await first.store.profiles.get(first.admin.id, "main");
  const started = performance.now();
  await first.store.profiles.addServer(profile.id, "probe", null);
  const noticed = await changed;
  // The instances poll the counter every 500 ms: a second is the promise, with room for a slow machine.
  expect(noticed - started).toBeLessThan(1_500);
  expect((await onSecond.listTools()).tools.map((tool) => tool.name)).toContain("probe_echo");
});

test("a session started on one instance gets 404 on the other, so the client initializes again", async () => {
  const initialize = {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "lb-test", version: "1" } },
  };
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream" };
  const started = await fetch(`${first.url}/mcp/p/main`, { method: "POST", headers, body: JSON.stringify(initialize) });
  expect(started.status).toBe(200);
  const session = started.headers.get("mcp-session-id")!;
  expect(session).toBeTruthy();
  await started.body?.cancel();

  const elsewhere = await fetch(`${second.url}/mcp/p/main`, {
    method: "POST",
    headers: { ...headers, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list", params: {} }),
  });
  expect(elsewhere.status).toBe(404);
  expect(((await elsewhere.json()) as { error: { message: string } }).error.message).toContain("initialize a new session");
});

test("each instance runs its own sandboxes", async () => {
  const onFirst = await client(first);
  await onFirst.callTool({ name: "probe_echo", arguments: { message: "x" } });
  const onSecond = await client(second);
  await onSecond.callTool({ name: "echo_echo", arguments: { message: "y" } });
  const pids = (gateway: TestGateway) => new Set(gateway.gateway.backendStatus().map((backend) => backend.pid));
  expect([...pids(first)].filter((pid) => pids(second).has(pid))).toEqual([]);
  expect(first.gateway.backendStatus().map((backend) => backend.server)).toContain("probe");
  expect(second.gateway.backendStatus().map((backend) => backend.server)).toContain("echo");
});
