/**
 * OAuth connections with two gateway instances on one database, against a real
 * authorization server that rotates refresh tokens and detects reuse (using a
 * refresh token twice revokes the grant): the instances refresh a connection
 * once between them, and a disconnect revokes the tokens at the vendor. Runs
 * on SQLite in the core suite and on Postgres in the postgres suite.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { connect, freePort, probeSpec, startTestGateway, text, type TestGateway } from "./helpers/gateway.ts";
import { loginThroughBrowser, startOidcProvider, testVendorApp, type TestProvider } from "./helpers/oidc-provider.ts";
import { REFRESH_MARGIN_MS } from "../src/oauth/index.ts";

const ACCESS_TOKEN_TTL_SECONDS = REFRESH_MARGIN_MS / 1000 + 2;
const VENDOR = "testvendor";
// One keyring for both, as every instance of a deployment has.
const MASTER_KEY = `k1:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;

let provider: TestProvider;
let first: TestGateway;
let second: TestGateway;
let base: string;
let apiToken: string;
let profileToken: string;
const clients: Client[] = [];

const api = (gateway: TestGateway, path: string, init: RequestInit = {}) =>
  fetch(`${gateway.url}/api/v1${path}`, { ...init, headers: { authorization: `Bearer ${apiToken}`, ...(init.headers as Record<string, string>) } });

const refreshes = () => provider.grants.filter((grant) => grant === "refresh_token").length;

async function connectVendor(): Promise<void> {
  const started = await api(first, `/connections/${VENDOR}`, { method: "POST" });
  expect(started.status).toBe(201);
  const { url } = (await started.json()) as { url: string };
  expect((await fetch(await loginThroughBrowser(url, `${base}/api/v1/oauth/callback`, "alice"))).status).toBe(200);
}

beforeAll(async () => {
  const port = freePort();
  base = `http://127.0.0.1:${port}`;
  provider = await startOidcProvider({
    redirectUri: `${base}/api/v1/oauth/callback`,
    refreshTokens: true,
    rotateRefreshTokens: true,
    // Slow enough that both instances are inside the refresh at once.
    tokenDelayMs: 300,
    accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS,
  });
  const oauthApp = {
    GIG_MASTER_KEY: MASTER_KEY,
    GIG_PUBLIC_URL: base,
    ...testVendorApp(provider, "openid offline_access"),
  };
  first = await startTestGateway({ ...oauthApp, GIG_LISTEN: `127.0.0.1:${port}`, GIG_OAUTH_TESTVENDOR_REVOKE_URL: `${provider.issuer}/token/revocation` }, { api: true });
  // The second instance is told a revocation endpoint where nothing listens, to see a failed revocation reported.
  second = await startTestGateway({ ...oauthApp, GIG_OAUTH_TESTVENDOR_REVOKE_URL: `http://127.0.0.1:${freePort()}/revoke` }, { api: true, sameDatabaseAs: first });
  await first.addServer(probeSpec("files", { credentials: [{ id: "files", type: "oauth2", vendor: VENDOR, scopes: ["files.read"], header: "Authorization", format: "Bearer {token}" }] }));
  profileToken = await first.profile("work", ["files"]);
  apiToken = (await first.auth!.createApiToken(first.admin.id, { label: "test", scopes: ["read", "write"], expiresInDays: 1 })).token;
  await connectVendor();
});

afterAll(async () => {
  for (const client of clients) await client.close();
  await second?.close();
  await first?.close();
  await provider?.close();
});

test("an expiring token is refreshed once for concurrent calls on both instances, and both then inject the same new token", async () => {
  for (const gateway of [first, second]) clients.push(await connect(`${gateway.url}/mcp/p/work`, profileToken));
  const before = await first.connections.accessToken(VENDOR, first.admin.id);
  const refreshesBefore = refreshes();
  // Until a token issued at connect time is inside the refresh margin.
  await Bun.sleep(ACCESS_TOKEN_TTL_SECONDS * 1000 - REFRESH_MARGIN_MS + 500);

  const calls = clients.flatMap((client, instance) =>
    Array.from({ length: 10 }, (_, index) => client.callTool({ name: "files_echo", arguments: { message: `${instance}-${index}` } })),
  );
  const results = await Promise.all(calls);
  expect(results.map((result) => text(result))).toEqual(clients.flatMap((_, instance) => Array.from({ length: 10 }, (__, index) => `files:${instance}-${index}`)));
  // A second refresh with the rotated-away token would have cost the whole grant (and failed the calls above).
  expect(refreshes() - refreshesBefore).toBe(1);

  const [onFirst, onSecond] = await Promise.all([first.connections.accessToken(VENDOR, first.admin.id), second.connections.accessToken(VENDOR, first.admin.id)]);
  expect(onFirst).toBe(onSecond);
  expect(onFirst).not.toBe(before);
  const record = (await first.store.oauthConnections.get(VENDOR, first.admin.id))!;
  expect(record).toMatchObject({ status: "connected", problem: null, version: 1, refreshingUntil: null });
  // The vendor accepts the new token: its grant is intact.
  expect((await fetch(`${provider.issuer}/me`, { headers: { authorization: `Bearer ${onFirst}` } })).status).toBe(200);
  expect(provider.liveRefreshTokens()).toHaveLength(1);
});

test("one claim at a time takes the refresh lease, only at the current version; a crashed holder's lease runs out", async () => {
  const record = (await first.store.oauthConnections.get(VENDOR, first.admin.id))!;
  const claimedUntil = Date.now() + 60_000;
  expect(await first.store.oauthConnections.claimRefresh(VENDOR, first.admin.id, record.version, claimedUntil)).toBe(true);
  // Held: neither another claim at this version nor one at a stale version wins.
  expect(await second.store.oauthConnections.claimRefresh(VENDOR, first.admin.id, record.version, Date.now() + 60_000)).toBe(false);
  await first.store.oauthConnections.releaseRefresh(VENDOR, first.admin.id, record.version);
  expect(await second.store.oauthConnections.claimRefresh(VENDOR, first.admin.id, record.version - 1, Date.now() + 60_000)).toBe(false);
  // An expired lease (its holder crashed) is taken over.
  expect(await first.store.oauthConnections.claimRefresh(VENDOR, first.admin.id, record.version, Date.now() - 1)).toBe(true);
  expect(await second.store.oauthConnections.claimRefresh(VENDOR, first.admin.id, record.version, Date.now() + 60_000)).toBe(true);
  await second.store.oauthConnections.releaseRefresh(VENDOR, first.admin.id, record.version);
  expect((await first.store.oauthConnections.get(VENDOR, first.admin.id))!.refreshingUntil).toBeNull();
});

test("disconnecting revokes the tokens at the vendor (RFC 7009): its refresh token is refused afterwards", async () => {
  const [refreshToken] = provider.liveRefreshTokens();
  expect(refreshToken).toBeDefined();
  const disconnected = await api(first, `/connections/${VENDOR}`, { method: "DELETE" });
  expect(disconnected.status).toBe(200);
  expect(await disconnected.json()).toEqual({ vendor: VENDOR, atVendor: "revoked" });
  expect(await second.store.oauthConnections.get(VENDOR, first.admin.id)).toBeUndefined();
  expect(provider.liveRefreshTokens()).toEqual([]);
  const { clientId, clientSecret } = provider.clients.primary;
  const reused = await fetch(`${provider.issuer}/token`, {
    method: "POST",
    headers: { authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken! }),
  });
  expect(reused.status).toBe(400);
  expect(((await reused.json()) as { error: string }).error).toBe("invalid_grant");
  const [audited] = await first.store.audit.list({ action: "oauth.revoke" });
  expect(audited).toMatchObject({ decision: "allow", detail: { vendor: VENDOR, atVendor: "revoked" } });
});

test("a vendor that cannot be told is reported, and the tokens are deleted here anyway", async () => {
  await connectVendor();
  expect(provider.liveRefreshTokens()).toHaveLength(1);
  const disconnected = await api(second, `/connections/${VENDOR}`, { method: "DELETE" });
  expect(disconnected.status).toBe(200);
  const body = (await disconnected.json()) as { atVendor: string; problem: string };
  expect(body.atVendor).toBe("failed");
  expect(body.problem).toContain("could not be reached");
  expect(body.problem).toContain("revoke the app's access in your testvendor account settings");
  expect(await first.store.oauthConnections.get(VENDOR, first.admin.id)).toBeUndefined();
  const [audited] = await first.store.audit.list({ action: "oauth.revoke" });
  expect(audited).toMatchObject({ decision: "allow", detail: { vendor: VENDOR, atVendor: "failed", problem: expect.stringContaining("could not be reached") } });
  const result = await clients[0]!.callTool({ name: "files_echo", arguments: { message: "gone" } });
  expect(result.isError).toBe(true);
  expect(text(result)).toContain(`there is no ${VENDOR} connection for this user`);
});
