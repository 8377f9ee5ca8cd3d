import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, startTestGateway, text, type TestGateway } from "./helpers/gateway.ts";

let gw: TestGateway;
let token: string;
let otherToken: string;

const INITIALIZE = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
};

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${gw.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: JSON.stringify(body),
  });
}

/** Initializes a raw session and returns its id. */
async function openSession(bearer: string, protocolVersion = "2025-11-25"): Promise<{ id: string; response: Response }> {
  const response = await post("/mcp/p/main", { ...INITIALIZE, params: { ...INITIALIZE.params, protocolVersion } }, { authorization: `Bearer ${bearer}` });
  return { id: response.headers.get("mcp-session-id") ?? "", response };
}

beforeAll(async () => {
  gw = await startTestGateway();
  token = await gw.profile("main", ["echo"]);
  otherToken = await gw.profile("other", ["echo"]);
});

afterAll(async () => {
  await gw?.close();
});

describe("authentication", () => {
  test("a missing token is 401 with WWW-Authenticate: Bearer", async () => {
    const response = await post("/mcp/p/main", INITIALIZE);
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toStartWith("Bearer");
  });

  test("a wrong token, another profile's token and an unknown profile all look the same", async () => {
    const wrong = await post("/mcp/p/main", INITIALIZE, { authorization: "Bearer gig_wrongwrongwrongwrongwrongwrongwrongwrong12" });
    const crossed = await post("/mcp/p/main", INITIALIZE, { authorization: `Bearer ${otherToken}` });
    const unknown = await post("/mcp/p/ghost", INITIALIZE, { authorization: `Bearer ${token}` });
    const bodies = await Promise.all([wrong, crossed, unknown].map((response) => response.text()));
    expect([wrong.status, crossed.status, unknown.status]).toEqual([401, 401, 401]);
    expect(new Set(bodies).size).toBe(1);
    expect(new Set([wrong, crossed, unknown].map((response) => response.headers.get("www-authenticate"))).size).toBe(1);
  });

  test("a token that is not a bearer token is refused", async () => {
    const response = await post("/mcp/p/main", INITIALIZE, { authorization: `Basic ${btoa(`x:${token}`)}` });
    expect(response.status).toBe(401);
  });

  test("no OAuth metadata is advertised", async () => {
    for (const path of ["/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp/p/main"]) {
      expect((await fetch(`${gw.url}${path}`)).status).toBe(404);
    }
  });

  test("the legacy /mcp and / endpoints serve the token's profile", async () => {
    for (const path of ["/mcp", "/"]) {
      const client = await connect(`${gw.url}${path}`, token);
      expect(text(await client.callTool({ name: "echo_echo", arguments: { message: path } }))).toBe(path);
      await client.close();
    }
  });
});

describe("DNS rebinding protection", () => {
  test("a foreign Host name is refused with 403", async () => {
    const response = await post("/mcp/p/main", INITIALIZE, { authorization: `Bearer ${token}`, host: "attacker.example" });
    expect(response.status).toBe(403);
    expect(await response.text()).toContain("attacker.example");
  });

  test("a foreign Origin is refused with 403, also on /healthz", async () => {
    const response = await post("/mcp/p/main", INITIALIZE, { authorization: `Bearer ${token}`, origin: "https://attacker.example" });
    expect(response.status).toBe(403);
    expect((await fetch(`${gw.url}/healthz`, { headers: { host: "rebound.example:8080" } })).status).toBe(403);
  });

  test("loopback names, IP literals and the gateway's own origin are accepted", async () => {
    const port = new URL(gw.url).port;
    const accepted: Record<string, string>[] = [
      { host: `localhost:${port}` },
      { host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}` },
      { host: `localhost:${port}`, origin: `http://localhost:${port}` },
      { host: `[::1]:${port}`, origin: `http://localhost:3000` },
      { host: `10.1.2.3:${port}` },
    ];
    for (const headers of accepted) {
      const response = await post("/mcp/p/main", INITIALIZE, { authorization: `Bearer ${token}`, ...headers });
      expect(response.status).toBe(200);
    }
  });

  test("GIG_PUBLIC_URL and GIG_ALLOWED_ORIGINS extend the trusted names", async () => {
    const configured = await startTestGateway({ GIG_PUBLIC_URL: "https://mcp.example.com", GIG_ALLOWED_ORIGINS: "https://app.example.com" });
    try {
      const bearer = await configured.profile("main", ["echo"]);
      const call = (headers: Record<string, string>) =>
        fetch(`${configured.url}/mcp/p/main`, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${bearer}`, ...headers },
          body: JSON.stringify(INITIALIZE),
        });
      expect((await call({ host: "mcp.example.com", origin: "https://mcp.example.com" })).status).toBe(200);
      expect((await call({ host: "app.example.com", origin: "https://app.example.com" })).status).toBe(200);
      expect((await call({ host: "mcp.example.com", origin: "https://evil.example.com" })).status).toBe(403);
      expect((await call({ host: "evil.example.com" })).status).toBe(403);
    } finally {
      await configured.close();
    }
  });
});

describe("sessions", () => {
  test("initialize negotiates 2025-11-25, 2025-06-18 and 2025-03-26", async () => {
    for (const version of ["2025-11-25", "2025-06-18", "2025-03-26"]) {
      const { response } = await openSession(token, version);
      expect(response.status).toBe(200);
      const body = await response.text();
      expect(body).toContain(`"protocolVersion":"${version}"`);
    }
  });

  test("a request without a session id (other than initialize) is a 400", async () => {
    const response = await post("/mcp/p/main", { jsonrpc: "2.0", id: 2, method: "tools/list" }, { authorization: `Bearer ${token}` });
    expect(response.status).toBe(400);
  });

  test("a session answers only to the token that opened it", async () => {
    const { id } = await openSession(token);
    expect(id).not.toBe("");
    const mainSecond = await gw.store.tokens.create((await gw.store.profiles.get(gw.admin.id, "main")).id, "second");
    const response = await post("/mcp/p/main", { jsonrpc: "2.0", id: 2, method: "tools/list" }, {
      authorization: `Bearer ${mainSecond.token}`,
      "mcp-session-id": id,
      "mcp-protocol-version": "2025-11-25",
    });
    expect(response.status).toBe(404);
  });

  test("JSON and SSE answers, and DELETE ends the session", async () => {
    const { id } = await openSession(token);
    const headers = { authorization: `Bearer ${token}`, "mcp-session-id": id, "mcp-protocol-version": "2025-11-25" };
    await post("/mcp/p/main", { jsonrpc: "2.0", method: "notifications/initialized" }, headers);
    // An answer with nothing before it is plain JSON; a call that reports progress streams.
    const answer = await post("/mcp/p/main", { jsonrpc: "2.0", id: 3, method: "tools/list" }, headers);
    expect(answer.status).toBe(200);
    expect(answer.headers.get("content-type")).toBe("application/json");
    expect(((await answer.json()) as { result: { tools: { name: string }[] } }).result.tools.map((tool) => tool.name)).toContain("echo_echo");
    const slow = { name: "echo_slow", arguments: { seconds: 0.05, steps: 2 }, _meta: { progressToken: "p" } };
    const streamed = await post("/mcp/p/main", { jsonrpc: "2.0", id: 4, method: "tools/call", params: slow }, headers);
    expect(streamed.headers.get("content-type")).toContain("text/event-stream");
    const events = await streamed.text();
    expect(events).toContain('"method":"notifications/progress"');
    expect(events).toContain("waited 0.05s in 2 steps");

    const stream = await fetch(`${gw.url}/mcp/p/main`, { headers: { ...headers, accept: "text/event-stream" } });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    await stream.body?.cancel();

    const deleted = await fetch(`${gw.url}/mcp/p/main`, { method: "DELETE", headers });
    expect(deleted.status).toBe(200);
    const after = await post("/mcp/p/main", { jsonrpc: "2.0", id: 5, method: "tools/list" }, headers);
    expect(after.status).toBe(404);
  });

  test("revoking a token closes its open sessions", async () => {
    const profile = await gw.store.profiles.get(gw.admin.id, "main");
    const { token: revocable, record } = await gw.store.tokens.create(profile.id, "revocable");
    const client = await connect(`${gw.url}/mcp/p/main`, revocable);
    expect(text(await client.callTool({ name: "echo_echo", arguments: { message: "before" } }))).toBe("before");
    await gw.store.tokens.revoke(profile.id, record.id);
    await gw.gateway.catalog.poll();
    const after = await client.callTool({ name: "echo_echo", arguments: { message: "after" } }).catch((e: unknown) => e);
    expect(String(after)).toMatch(/401|Unauthorized/);
    expect(gw.gateway.health().sessions).toBeGreaterThanOrEqual(0);
  });
});

describe("health", () => {
  test("/healthz reports status without naming tenants or servers", async () => {
    const response = await fetch(`${gw.url}/healthz`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status: "ok", version: "test", sandbox: "off" });
    expect(String(body.warning)).toContain("GIG_SANDBOX=off");
    expect(JSON.stringify(body)).not.toContain(gw.admin.id);
  });
});

describe("rate limits", () => {
  test("a token past its allowance gets 429 with Retry-After, another token still passes, /healthz is never limited", async () => {
    const limited = await startTestGateway({ GIG_RATE_LIMIT: "5", GIG_RATE_LIMIT_IP: "1000" });
    try {
      const token = await limited.profile("rl", ["echo"]);
      const other = await limited.profile("rl2", ["echo"]);
      const hit = (bearer: string) => fetch(`${limited.url}/mcp/p/rl`, { method: "POST", headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json", accept: "application/json, text/event-stream" }, body: "{}" });
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await hit(token)).status);
      expect(statuses.slice(0, 5).every((status) => status !== 429)).toBe(true);
      const refused = await hit(token);
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect((await hit(other)).status).not.toBe(429);
      for (let i = 0; i < 10; i++) expect((await fetch(`${limited.url}/healthz`)).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});

describe("dashboard files", () => {
  test("GIG_DASHBOARD_DIR pages are served to browsers at their paths, never anything outside the folder; MCP on / is untouched", async () => {
    const { mkdirSync, writeFileSync } = await import("node:fs");
    const { tempDir } = await import("./helpers/gateway.ts");
    const dir = tempDir("gigmcp-dashboard-");
    mkdirSync(`${dir}/out/profiles`, { recursive: true });
    writeFileSync(`${dir}/out/index.html`, "<h1>home</h1>");
    writeFileSync(`${dir}/out/profiles.html`, "<h1>profiles</h1>");
    writeFileSync(`${dir}/secret.txt`, "outside");
    const served = await startTestGateway({ GIG_DASHBOARD_DIR: `${dir}/out` });
    try {
      const page = (path: string) => fetch(`${served.url}${path}`, { headers: { accept: "text/html" } });
      expect(await (await page("/")).text()).toBe("<h1>home</h1>");
      expect(await (await page("/profiles")).text()).toBe("<h1>profiles</h1>");
      expect((await page("/..%2Fsecret.txt")).status).toBe(404);
      expect((await page("/%2e%2e/secret.txt")).status).toBe(404);
      const mcp = await fetch(`${served.url}/`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(mcp.status).toBe(401);
    } finally {
      await served.close();
    }
  });
});
