/**
 * The REST control plane over real HTTP: login and sessions, CSRF, API token
 * scopes, tenant isolation by id, validation errors in one shape, and the
 * contract between the route table and its OpenAPI document.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, startTestGateway, type TestGateway } from "./helpers/gateway.ts";

const PASSWORD = "correct horse battery staple";

let gateway: TestGateway;
let api: string;

interface Session {
  cookie: string;
  csrf: string;
}

async function login(email: string, password = PASSWORD): Promise<Session> {
  const response = await fetch(`${api}/sessions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) });
  expect(response.status).toBe(201);
  const cookie = response.headers.get("set-cookie")!.split(";")[0]!;
  expect(response.headers.get("set-cookie")).toContain("HttpOnly");
  expect(response.headers.get("set-cookie")).toContain("SameSite=Lax");
  return { cookie, csrf: ((await response.json()) as { csrfToken: string }).csrfToken };
}

function call(session: Session | { token: string } | undefined, method: string, path: string, body?: unknown, csrf = true) {
  const headers: Record<string, string> = {};
  if (session && "cookie" in session) {
    headers.cookie = session.cookie;
    if (csrf) headers["x-csrf-token"] = session.csrf;
  }
  if (session && "token" in session) headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  return fetch(`${api}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

beforeAll(async () => {
  gateway = await startTestGateway({}, { api: true });
  api = `${gateway.url}/api/v1`;
  await gateway.auth!.setPassword(gateway.admin.id, PASSWORD);
  const member = await gateway.store.users.create({ email: "member@test", role: "member" });
  await gateway.auth!.setPassword(member.id, PASSWORD);
});

afterAll(() => gateway?.close());

describe("sessions", () => {
  test("login sets an httpOnly cookie; /me answers; a wrong password and an unknown email get the same 401", async () => {
    const session = await login("admin@test");
    const me = await call(session, "GET", "/me");
    expect(await me.json()).toMatchObject({ email: "admin@test", role: "admin" });
    const wrong = await fetch(`${api}/sessions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "admin@test", password: "nope nope nope" }) });
    const unknown = await fetch(`${api}/sessions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "ghost@test", password: "nope nope nope" }) });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(await wrong.json()).toEqual(await unknown.json());
  });

  test("a state change without the CSRF token is refused; with it, it works; logout ends the session", async () => {
    const session = await login("admin@test");
    const refused = await call(session, "POST", "/profiles", { name: "csrf-test" }, false);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: "csrf" } });
    expect((await call(session, "POST", "/profiles", { name: "csrf-test" })).status).toBe(201);
    expect((await call(session, "DELETE", "/sessions/current")).status).toBe(204);
    expect((await call(session, "GET", "/me")).status).toBe(401);
    const [first, second] = [await login("admin@test"), await login("admin@test")];
    expect((await call(first, "DELETE", "/sessions")).status).toBe(204);
    expect((await call(second, "GET", "/me")).status).toBe(401);
  });
});

describe("tenants and tokens", () => {
  test("a profile token is shown once, listed by prefix only, and revocable", async () => {
    const session = await login("admin@test");
    await call(session, "POST", "/profiles", { name: "tokens" });
    const created = (await (await call(session, "POST", "/profiles/tokens/tokens", { label: "ci" })).json()) as { token: string; prefix: string };
    expect(created.token).toStartWith(created.prefix);
    const listed = await (await call(session, "GET", "/profiles/tokens/tokens")).json();
    expect(JSON.stringify(listed)).not.toContain(created.token);
    expect(listed).toEqual([expect.objectContaining({ prefix: created.prefix, label: "ci" })]);
    expect((await call(session, "DELETE", `/profiles/tokens/tokens/${created.prefix}`)).status).toBe(204);
    expect(await (await call(session, "GET", "/profiles/tokens/tokens")).json()).toEqual([]);
  });

  test("a member can neither read nor touch another tenant's profiles, tokens, credentials or audit", async () => {
    const admin = await login("admin@test");
    await call(admin, "POST", "/profiles", { name: "private" });
    const member = await login("member@test");
    expect(await (await call(member, "GET", "/profiles")).json()).toEqual([]);
    expect((await call(member, "GET", "/profiles/private/tokens")).status).toBe(404);
    expect((await call(member, "POST", "/profiles/private/tokens", {})).status).toBe(404);
    expect((await call(member, "DELETE", "/profiles/private")).status).toBe(404);
    expect(await (await call(member, "GET", "/credentials")).json()).toEqual([]);
    const audit = (await (await call(member, "GET", "/audit")).json()) as { tenantId: string | null }[];
    const memberId = ((await (await call(member, "GET", "/me")).json()) as { id: string }).id;
    for (const event of audit) expect(event.tenantId).toBe(memberId);
    expect((await call(admin, "GET", "/profiles/private/tokens")).status).toBe(200);
  });

  test("API tokens act within their scopes", async () => {
    const { token: reader } = await gateway.auth!.createApiToken(gateway.admin.id, { label: "reader", scopes: ["read"], expiresInDays: 1 });
    expect((await call({ token: reader }, "GET", "/profiles")).status).toBe(200);
    const refused = await call({ token: reader }, "POST", "/profiles", { name: "by-reader" });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: "insufficient_scope" } });
    const { token: writer } = await gateway.auth!.createApiToken(gateway.admin.id, { label: "writer", scopes: ["write"], expiresInDays: 1 });
    expect((await call({ token: writer }, "POST", "/profiles", { name: "by-writer" })).status).toBe(201);
    expect((await call({ token: "gigapi_not-a-real-token" }, "GET", "/profiles")).status).toBe(401);
  });

  test("credentials are set and rotated through the API, and never returned", async () => {
    await gateway.addServer({ name: "keyed", command: "/bin/cat", credentials: [{ id: "key", type: "api_key", header: "Authorization", format: "Bearer {token}" }] });
    const session = await login("admin@test");
    expect((await call(session, "PUT", "/credentials/keyed/key", { type: "api_key", secret: "sk-first-value" })).status).toBe(204);
    expect((await call(session, "PUT", "/credentials/keyed/key", { type: "api_key", secret: "sk-second-value" })).status).toBe(204);
    const listed = await (await call(session, "GET", "/credentials")).text();
    expect(listed).toContain('"id":"key"');
    expect(listed).not.toContain("sk-");
    expect((await call(session, "PUT", "/credentials/keyed/other", { type: "api_key", secret: "x" })).status).toBe(404);
  });
});

describe("administration and audit", () => {
  test("only admins manage users; a role change is audited", async () => {
    const member = await login("member@test");
    expect((await call(member, "GET", "/users")).status).toBe(403);
    const admin = await login("admin@test");
    const created = (await (await call(admin, "POST", "/users", { email: "new@test", role: "member", password: "a long enough passphrase" })).json()) as { id: string };
    expect((await call(admin, "POST", "/users", { email: "weak@test", password: "short" })).status).toBe(400);
    expect((await call(admin, "PATCH", `/users/${created.id}`, { role: "admin" })).status).toBe(204);
    const [event] = (await (await call(admin, "GET", "/audit?action=user.role")).json()) as { tenantId: string; detail: { role: string } }[];
    expect(event).toMatchObject({ tenantId: created.id, detail: { role: "admin" } });
    expect(await (await call(admin, "GET", "/audit?decision=deny&action=user.role")).json()).toEqual([]);
  });

  test("the audit stream delivers new events as server-sent events", async () => {
    const admin = await login("admin@test");
    const controller = new AbortController();
    const stream = await fetch(`${api}/audit/stream?action=token.create`, { headers: { cookie: admin.cookie }, signal: controller.signal });
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    const reader = stream.body!.getReader();
    await reader.read(); // the opening comment
    await call(admin, "POST", "/profiles", { name: "streamed" });
    await call(admin, "POST", "/profiles/streamed/tokens", { label: "live" });
    let text = "";
    while (!text.includes("event: audit")) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toContain('"action":"token.create"');
    controller.abort();
  });

  test("running sandboxes are listed per tenant; admins change a server's limits", async () => {
    const token = await gateway.profile("running", ["echo"]);
    const client = await connect(`${gateway.url}/mcp/p/running`, token);
    await client.callTool({ name: "echo_echo", arguments: { message: "up" } });
    const admin = await login("admin@test");
    const running = (await (await call(admin, "GET", "/servers/running")).json()) as { server: string; tenantId: string }[];
    expect(running).toContainEqual(expect.objectContaining({ server: "echo", tenantId: gateway.admin.id }));
    const member = await login("member@test");
    expect(await (await call(member, "GET", "/servers/running")).json()).toEqual([]);
    expect((await call(member, "PATCH", "/servers/echo", { pids: 64 })).status).toBe(403);
    expect((await call(admin, "PATCH", "/servers/echo", { pids: 64, timeoutSeconds: 5 })).status).toBe(204);
    expect(await gateway.store.servers.get("echo")).toMatchObject({ limits: { pids: 64 }, timeoutMs: 5000 });
    expect((await call(admin, "PATCH", "/servers/echo", { pids: 1 })).status).toBe(400);
    await client.close();
  });

  test("installing needs explicit consent, and a refused install is a clear 422", async () => {
    const admin = await login("admin@test");
    expect((await call(admin, "POST", "/servers", { reference: "anything" })).status).toBe(400);
    const refused = await call(admin, "POST", "/servers", { reference: "anything", consent: true });
    expect(refused.status).toBe(422);
    expect(await refused.json()).toMatchObject({ error: { code: "install_refused", message: expect.stringContaining("GIG_REGISTRY_URL") } });
  });
});

describe("contract", () => {
  test("invalid input gets 400 in the one error shape, naming the field", async () => {
    const session = await login("admin@test");
    const response = await call(session, "POST", "/profiles", { name: "Not Valid!", extra: 1 });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; message: string; details: { field: string }[] } };
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.details.map((detail) => detail.field)).toContain("name");
  });

  test("every documented route answers as documented: public ones without a caller, the others 401 without one", async () => {
    const document = (await (await fetch(`${api}/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, { security: unknown[] }>> };
    expect(document.openapi).toBe("3.1.0");
    const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ path, method, operation })));
    expect(operations.length).toBeGreaterThanOrEqual(20);
    for (const { path, method, operation } of operations) {
      const concrete = path.replace(/\{(\w+)\}/g, "x");
      const response = await fetch(`${api}${concrete}`, { method: method.toUpperCase(), headers: { "content-type": "application/json" }, body: method === "get" ? undefined : "{}" });
      if (operation.security.length === 0) expect({ path, method, ok: response.status < 500 && response.status !== 401 }).toEqual({ path, method, ok: true });
      else expect({ path, method, status: response.status }).toEqual({ path, method, status: 401 });
    }
    expect((await fetch(`${gateway.url}/api/v1/docs`)).headers.get("content-type")).toContain("text/html");
  });
});

describe("audit verify", () => {
  test("admins get the chain's state, linked from the events the gateway recorded; members are refused", async () => {
    const admin = await login("admin@test");
    const member = await login("member@test");
    const response = await call(admin, "GET", "/audit/verify");
    expect(response.status).toBe(200);
    const result = (await response.json()) as { intact: boolean; verified: number; head: { id: number; chain: string } };
    expect(result).toMatchObject({ intact: true, broken: null, problem: null });
    // Every login above went through the chain; the head is the newest event.
    expect(result.verified).toBeGreaterThanOrEqual(2);
    const [newest] = await gateway.store.audit.list({ limit: 1 });
    expect(result.head).toMatchObject({ id: newest!.id, chain: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect((await call(member, "GET", "/audit/verify")).status).toBe(403);
  });
});
