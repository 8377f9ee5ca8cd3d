/**
 * Egress end to end: the bundled fetch server, sandboxed and holding only a
 * placeholder, calls an allowlisted HTTPS upstream through the gateway's
 * proxy; the upstream checks it got the real key, while the sandboxed
 * process's environment and memory only ever held the placeholder.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { auditEventually, connect, startTestGateway, text, type TestGateway } from "../helpers/gateway.ts";
import { addKeyedFetch, sandboxSettings, startTestApi } from "./fetch-upstream.ts";
import { assertIsolatedNetns } from "./netns.ts";

const SECRET = `sk-live-${crypto.randomUUID()}`;
const UID_BASE = 310000;

let gateway: TestGateway;
let client: Client;
let upstream: ReturnType<typeof Bun.serve>;
const received: string[] = [];

beforeAll(async () => {
  assertIsolatedNetns();
  const api = startTestApi((request) => {
    const authorization = request.headers.get("authorization") ?? "";
    received.push(authorization);
    // Answers only whether the key was right: the secret never travels back into the sandbox.
    return authorization === `Bearer ${SECRET}` ? new Response("authorized") : new Response("wrong key", { status: 401 });
  });
  upstream = api.server;
  gateway = await startTestGateway(sandboxSettings("egress", UID_BASE, 18084), { egress: api.proxy });
  await addKeyedFetch(gateway, api.egress, SECRET);
  client = await connect(`${gateway.url}/mcp/p/main`, await gateway.profile("main", ["fetch"]));
}, 60_000);

afterAll(async () => {
  await client?.close();
  await gateway?.close();
  upstream?.stop(true);
});

function sandboxedFetchPids(): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => {
      try {
        const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
        // Only this file's sandboxes: other files (or runs) use other uid ranges.
        return uid >= UID_BASE && uid < UID_BASE + 10_000 && readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes("fetch") && readFileSync(`/proc/${pid}/environ`, "utf8").includes("FETCH_BEARER_TOKEN=");
      } catch {
        return false;
      }
    });
}

/** Whether `needle` occurs anywhere in the readable memory of `pid` (read through /proc/PID/mem, region by region). */
function memoryContains(pid: number, needle: string): boolean {
  const pattern = Buffer.from(needle);
  const fd = openSync(`/proc/${pid}/mem`, "r");
  try {
    for (const line of readFileSync(`/proc/${pid}/maps`, "utf8").trim().split("\n")) {
      const [range, permissions] = line.split(" ");
      const [start, end] = range!.split("-").map((hex) => Number.parseInt(hex, 16));
      if (!permissions!.startsWith("r") || end! - start! > 1 << 30) continue;
      const region = Buffer.alloc(end! - start!);
      try {
        readSync(fd, region, 0, region.length, start!);
      } catch {
        continue; // guard pages and the like
      }
      if (region.includes(pattern)) return true;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

test("the sandboxed server reaches its allowlisted API with the real key, which it never holds", async () => {
  const result = await client.callTool({ name: "fetch_fetch", arguments: { url: `https://api.test:${upstream.port}/whoami` } });
  expect(text(result)).toBe("authorized");
  expect(received.at(-1)).toBe(`Bearer ${SECRET}`);

  const placeholder = await gateway.store.placeholders.getOrCreate("fetch", "token", gateway.admin.id);
  expect(placeholder).toMatch(/^gigph-[0-9a-f]{32}$/);
  const [pid] = sandboxedFetchPids();
  expect(pid).toBeDefined();
  const environ = readFileSync(`/proc/${pid}/environ`, "utf8");
  expect(environ).toContain(`FETCH_BEARER_TOKEN=${placeholder}`);
  expect(environ).not.toContain(SECRET);
  expect(memoryContains(pid!, placeholder)).toBe(true);
  expect(memoryContains(pid!, SECRET)).toBe(false);

  const events = await auditEventually(gateway.store, { limit: 20 }, (event) => event.decision === "inject");
  expect(events.find((event) => event.action === "egress" && event.decision === "inject")).toMatchObject({
    actor: "fetch",
    tenantId: gateway.admin.id,
    detail: expect.objectContaining({ host: "api.test", method: "GET", path: "/whoami", status: 200, credentialId: "token" }),
  });
});

test("a host outside the allowlist is refused by the proxy and audited", async () => {
  const result = await client.callTool({ name: "fetch_fetch", arguments: { url: `https://other.test:${upstream.port}/whoami` } });
  expect(result.isError).toBe(true);
  expect(received.length).toBe(1);
  const events = await auditEventually(gateway.store, { limit: 20 }, (event) => event.decision === "deny");
  expect(events.find((event) => event.decision === "deny")).toMatchObject({ action: "egress", actor: "fetch", detail: expect.objectContaining({ host: "other.test" }) });
});
