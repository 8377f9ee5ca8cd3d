/**
 * OAuth connections against a real authorization server (oidc-provider on
 * loopback, refresh tokens on, access tokens living 62 s so that they are
 * inside the gateway's 60 s refresh margin two seconds after being issued).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { BUN, connect, freePort, MAIN, probeSpec, startTestGateway, text, type TestGateway } from "./helpers/gateway.ts";
import { loginThroughBrowser, startOidcProvider, testVendorApp, type TestProvider } from "./helpers/oidc-provider.ts";
import { hashPassword } from "../src/auth/index.ts";
import { REFRESH_MARGIN_MS } from "../src/oauth/index.ts";

const ACCESS_TOKEN_TTL_SECONDS = REFRESH_MARGIN_MS / 1000 + 2;
const VENDOR = "testvendor";
const credential = { id: "files", type: "oauth2" as const, vendor: VENDOR, scopes: ["files.read"] };

let provider: TestProvider;
let gateway: TestGateway;
let base: string;
let apiToken: string;
let mcp: Client;

const api = (path: string, init: RequestInit = {}) =>
  fetch(`${base}/api/v1${path}`, { ...init, headers: { authorization: `Bearer ${apiToken}`, "content-type": "application/json", ...(init.headers as Record<string, string>) } });

/** A JSON answer, shaped as the assertions below describe. */
const json = async (response: Response): Promise<any> => response.json();

/** Waits until a token issued now would be inside the refresh margin. */
const untilRefreshDue = () => Bun.sleep((ACCESS_TOKEN_TTL_SECONDS * 1000 - REFRESH_MARGIN_MS) + 500);

const refreshes = () => provider.grants.filter((grant) => grant === "refresh_token").length;

beforeAll(async () => {
  const port = freePort();
  base = `http://127.0.0.1:${port}`;
  provider = await startOidcProvider({ redirectUri: `${base}/api/v1/oauth/callback`, refreshTokens: true, accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS });
  gateway = await startTestGateway(
    {
      GIG_LISTEN: `127.0.0.1:${port}`,
      GIG_PUBLIC_URL: base,
      ...testVendorApp(provider, "openid offline_access"),
    },
    { api: true },
  );
  await gateway.addServer(probeSpec("files", { credentials: [{ ...credential, header: "Authorization", format: "Bearer {token}" }] }));
  await gateway.addServer(probeSpec("files-local", { tier: "entrusted", credentials: [{ ...credential, scopes: ["files.write"], env: "FILES_TOKEN" }] }));
  const profileToken = await gateway.profile("work", ["files", "files-local"]);
  apiToken = (await gateway.auth!.createApiToken(gateway.admin.id, { label: "test", scopes: ["read", "write", "admin"], expiresInDays: 1 })).token;
  mcp = await connect(`${base}/mcp/p/work`, profileToken);
});

afterAll(async () => {
  await mcp?.close();
  await gateway?.close();
  await provider?.close();
});

test("an app from GIG_OAUTH_* is listed with its endpoints and never its secret", async () => {
  const response = await api("/oauth/apps");
  const body = await response.text();
  expect(response.status).toBe(200);
  expect(JSON.parse(body)).toEqual({
    apps: [
      {
        vendor: VENDOR,
        clientId: provider.clients.primary.clientId,
        authorizeUrl: `${provider.issuer}/auth`,
        tokenUrl: `${provider.issuer}/token`,
        revokeUrl: null,
        scopes: ["openid", "offline_access"],
        pkce: true,
        hasClientSecret: true,
        source: "environment",
      },
    ],
    redirectUri: `${base}/api/v1/oauth/callback`,
  });
  expect(body).not.toContain(provider.clients.primary.clientSecret);
});

test("a stored app's secret is sealed and never returned; a vendor without a preset needs both URLs", async () => {
  const secret = "stored-client-secret-value";
  const noUrls = await api("/oauth/apps/acme-crm", { method: "PUT", body: JSON.stringify({ clientId: "acme", clientSecret: secret }) });
  expect(noUrls.status).toBe(200);
  const connectAcme = await api("/connections/acme-crm", { method: "POST" });
  expect(connectAcme.status).toBe(409);
  expect((await json(connectAcme)).error).toMatchObject({ code: "app_not_configured", message: expect.stringContaining("acme-crm has no built-in endpoints") });
  const google = await api("/oauth/apps/google", { method: "PUT", body: JSON.stringify({ clientId: "g-client", clientSecret: secret }) });
  const view = await google.text();
  expect(view).not.toContain(secret);
  expect(JSON.parse(view)).toMatchObject({
    vendor: "google",
    authorizeUrl: "https://accounts.google.com/o/oauth2/v2/auth",
    revokeUrl: "https://oauth2.googleapis.com/revoke",
    hasClientSecret: true,
    source: "stored",
  });
  const stored = await gateway.store.oauthApps.get("google");
  expect(JSON.stringify(stored)).not.toContain(secret);
  const listed = await (await api("/oauth/apps")).text();
  expect(listed).not.toContain(secret);
  expect(JSON.parse(listed).apps.map((app: { vendor: string }) => app.vendor)).toEqual(["acme-crm", "google", VENDOR]);
  expect((await api("/oauth/apps/google", { method: "DELETE" })).status).toBe(204);
  expect((await api("/oauth/apps/acme-crm", { method: "DELETE" })).status).toBe(204);
});

test("before connecting, the vendor is listed as not connected and a call says how to connect", async () => {
  const { connections } = await json(await api("/connections"));
  expect(connections).toEqual([
    expect.objectContaining({ vendor: VENDOR, status: "not_connected", servers: ["files", "files-local"], appConfigured: true }),
  ]);
  const result = await mcp.callTool({ name: "files_echo", arguments: { message: "hi" } });
  expect(result.isError).toBe(true);
  expect(text(result)).toContain(`there is no ${VENDOR} connection for this user: run \`gigmcp connect ${VENDOR}\``);
});

test("connect: authorization code with PKCE, state and nonce; a tampered state and a replayed redirect are refused", async () => {
  const started = await api(`/connections/${VENDOR}`, { method: "POST" });
  expect(started.status).toBe(201);
  const { url } = (await started.json()) as { url: string };
  const authorization = new URL(url);
  expect(authorization.origin + authorization.pathname).toBe(`${provider.issuer}/auth`);
  expect(authorization.searchParams.get("code_challenge_method")).toBe("S256");
  expect(authorization.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(authorization.searchParams.get("nonce")).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(authorization.searchParams.get("redirect_uri")).toBe(`${base}/api/v1/oauth/callback`);
  // The union of what both servers declare, plus the app's own scopes.
  expect(authorization.searchParams.get("scope")!.split(" ").sort()).toEqual(["files.read", "files.write", "offline_access", "openid"]);

  const callback = new URL(await loginThroughBrowser(url, `${base}/api/v1/oauth/callback`, "alice"));
  const state = callback.searchParams.get("state")!;
  const tampered = new URL(callback);
  tampered.searchParams.set("state", `${state.slice(0, -1)}${state.endsWith("A") ? "B" : "A"}`);
  const refused = await fetch(tampered);
  expect(refused.status).toBe(400);
  expect((await json(refused)).error.code).toBe("invalid_state");

  const done = await fetch(callback);
  expect(done.status).toBe(200);
  expect(await done.text()).toContain(`Connected ${VENDOR}`);
  const replayed = await fetch(callback);
  expect(replayed.status).toBe(400);
  expect((await json(replayed)).error.message).toContain("already used");

  const { connections } = await json(await api("/connections"));
  expect(connections[0]).toMatchObject({ vendor: VENDOR, status: "connected", problem: null });
  // The scopes the vendor granted (this one grants offline_access only with prompt=consent, and issues refresh tokens anyway).
  expect(connections[0].scopes).toEqual(expect.arrayContaining(["files.read", "files.write", "openid"]));
  expect(connections[0].expiresAt).toBeGreaterThan(Date.now());
  // Tokens are sealed: neither the list nor the stored row shows them.
  const record = await gateway.store.oauthConnections.get(VENDOR, gateway.admin.id);
  expect(record!.sealed.ciphertext).toBeDefined();
  expect(JSON.stringify(record)).not.toMatch(/access_?token|refresh_?token/i);
  const audit = await gateway.store.audit.list({ action: "oauth.connect" });
  expect(audit.map((event) => event.decision)).toEqual(["deny", "allow", "deny"]);
  expect(provider.grants).toEqual(["authorization_code"]);
});

test("an expiring token is refreshed once for 50 concurrent calls, before it expires; entrusted servers restart with the new one", async () => {
  const entrustedPid = text(await mcp.callTool({ name: "files-local_pid", arguments: {} }));
  expect(text(await mcp.callTool({ name: "files-local_env", arguments: {} }))).toContain("FILES_TOKEN");
  const before = (await gateway.store.oauthConnections.get(VENDOR, gateway.admin.id))!;
  await untilRefreshDue();
  const refreshesBefore = refreshes();
  const results = await Promise.all(Array.from({ length: 50 }, (_, index) => mcp.callTool({ name: "files_echo", arguments: { message: `m${index}` } })));
  expect(results.map((result) => text(result))).toEqual(Array.from({ length: 50 }, (_, index) => `files:m${index}`));
  expect(refreshes() - refreshesBefore).toBe(1);
  const after = (await gateway.store.oauthConnections.get(VENDOR, gateway.admin.id))!;
  expect(after.expiresAt!).toBeGreaterThan(before.expiresAt!);
  // Refreshed ahead of expiry: the old token still had time left.
  expect(after.updatedAt).toBeLessThan(before.expiresAt!);
  expect(after.sealed.ciphertext).not.toBe(before.sealed.ciphertext);
  // The entrusted server held the old token in its environment: its sandbox was restarted.
  await Bun.sleep(200);
  expect(text(await mcp.callTool({ name: "files-local_pid", arguments: {} }))).not.toBe(entrustedPid);
});

test("a revoked refresh token marks the connection as needing reconnection: calls say so, and the audit records it", async () => {
  provider.revokeRefreshTokens();
  await untilRefreshDue();
  const result = await mcp.callTool({ name: "files_echo", arguments: { message: "hi" } });
  expect(result.isError).toBe(true);
  expect(text(result)).toContain(`the ${VENDOR} connection needs reconnecting`);
  expect(text(result)).toContain(`gigmcp connect ${VENDOR}`);
  expect(text(result)).toContain("invalid_grant");
  // Once marked, no further refresh is attempted.
  const attempts = refreshes();
  expect((await mcp.callTool({ name: "files-local_echo", arguments: { message: "hi" } })).isError).toBe(true);
  expect(refreshes()).toBe(attempts);
  const [denied] = await gateway.store.audit.list({ action: "oauth.refresh" });
  expect(denied).toMatchObject({ decision: "deny", tenantId: gateway.admin.id, detail: { vendor: VENDOR } });
  const { connections } = await json(await api("/connections"));
  expect(connections[0]).toMatchObject({ status: "needs_reconnect" });
  expect(connections[0].problem).toContain("invalid_grant");
});

test("disconnecting removes the tokens, and says when the vendor has no revocation endpoint to tell", async () => {
  const disconnected = await api(`/connections/${VENDOR}`, { method: "DELETE" });
  expect(disconnected.status).toBe(200);
  expect(await json(disconnected)).toEqual({ vendor: VENDOR, atVendor: "unsupported" });
  expect(await gateway.store.oauthConnections.get(VENDOR, gateway.admin.id)).toBeUndefined();
  expect((await api(`/connections/${VENDOR}`, { method: "DELETE" })).status).toBe(404);
  const { connections } = await json(await api("/connections"));
  expect(connections[0]).toMatchObject({ status: "not_connected", scopes: [] });
  const [revoked] = await gateway.store.audit.list({ action: "oauth.revoke" });
  expect(revoked).toMatchObject({ decision: "allow", detail: { vendor: VENDOR, atVendor: "unsupported" } });
});

test("the CLI connects (printing the URL, waiting for the redirect), lists and revokes; app secrets never print", async () => {
  const env = {
    PATH: process.env.PATH!,
    GIG_DATA_DIR: gateway.dataDir,
    GIG_DB_URL: gateway.dbUrl,
    GIG_LOG_LEVEL: "error",
    GIG_PUBLIC_URL: base,
    ...testVendorApp(provider),
  };
  const gigmcp = (args: string[]) => {
    const result = Bun.spawnSync([BUN, MAIN, ...args], { env });
    return { code: result.exitCode, out: result.stdout.toString(), err: result.stderr.toString() };
  };
  const connecting = Bun.spawn([BUN, MAIN, "connect", VENDOR], { env, stdout: "pipe", stderr: "pipe" });
  const reader = connecting.stdout.getReader();
  let printed = "";
  while (!/http\S+state=\S+/.test(printed)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`gigmcp connect ended early: ${printed}${await new Response(connecting.stderr).text()}`);
    printed += new TextDecoder().decode(value);
  }
  expect(printed).toContain(`Open this URL to connect ${VENDOR} for admin@test`);
  const url = /(http\S+state=\S+)/.exec(printed)![1]!;
  expect((await fetch(await loginThroughBrowser(url, `${base}/api/v1/oauth/callback`, "bob"))).status).toBe(200);
  expect(await connecting.exited).toBe(0);
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) printed += new TextDecoder().decode(chunk.value);
  expect(printed).toContain(`connected ${VENDOR} (scopes:`);

  const listed = gigmcp(["connections", "list", "--json"]);
  expect(listed.code).toBe(0);
  expect(JSON.parse(listed.out)).toEqual([expect.objectContaining({ vendor: VENDOR, status: "connected", servers: ["files", "files-local"] })]);
  expect((await mcp.callTool({ name: "files_echo", arguments: { message: "back" } })).isError).toBeFalsy();

  const apps = gigmcp(["oauth-app", "list"]);
  expect(apps.out).toContain(`Redirect URI to register at each vendor: ${base}/api/v1/oauth/callback`);
  expect(apps.out + apps.err).not.toContain(provider.clients.primary.clientSecret);
  expect(gigmcp(["connections", "revoke", VENDOR])).toMatchObject({
    code: 0,
    out: `revoked ${VENDOR} for admin@test here; ${VENDOR} has no revocation endpoint, so revoke the app's access in the ${VENDOR} account settings\n`,
  });
  expect(gigmcp(["connections", "revoke", VENDOR]).code).toBe(1);
  expect(gigmcp(["connect", "nowhere"])).toMatchObject({ code: 1, err: expect.stringContaining("no OAuth app is registered for nowhere") });
});

test("a flow started in a browser session must come back in that user's session", async () => {
  const password = "a-long-enough-password";
  await gateway.store.users.setPasswordHash(gateway.admin.id, await hashPassword(password));
  const login = await fetch(`${base}/api/v1/sessions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "admin@test", password }) });
  expect(login.status).toBe(201);
  const { csrfToken } = (await login.json()) as { csrfToken: string };
  const cookie = login.headers.getSetCookie().map((header) => header.split(";")[0]).join("; ");
  const start = async () => {
    const started = await fetch(`${base}/api/v1/connections/${VENDOR}`, { method: "POST", headers: { cookie, "x-csrf-token": csrfToken } });
    expect(started.status).toBe(201);
    return loginThroughBrowser((await json(started)).url, `${base}/api/v1/oauth/callback`, "alice");
  };

  const elsewhere = await fetch(await start());
  expect(elsewhere.status).toBe(403);
  expect((await json(elsewhere)).error.code).toBe("wrong_session");
  expect(await gateway.store.oauthConnections.get(VENDOR, gateway.admin.id)).toBeUndefined();

  expect((await fetch(await start(), { headers: { cookie } })).status).toBe(200);
  expect((await gateway.store.oauthConnections.get(VENDOR, gateway.admin.id))?.status).toBe("connected");
});
