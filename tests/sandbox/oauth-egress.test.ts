/**
 * An OAuth connection feeding the egress proxy: the bundled fetch server,
 * sealed and sandboxed, declares an oauth2 credential of a vendor and has no
 * value of its own; the user connects at a real authorization server
 * (oidc-provider on loopback), and the test HTTPS API receives the
 * connection's current access token, before and after a refresh, while the
 * sandbox only ever holds a placeholder.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { readdirSync, readFileSync } from "node:fs";
import { REFRESH_MARGIN_MS } from "../../src/oauth/index.ts";
import { oauthConnectionContext, openVault } from "../../src/vault/index.ts";
import { connect, freePort, startTestGateway, text, type TestGateway } from "../helpers/gateway.ts";
import { loginThroughBrowser, startOidcProvider, testVendorApp, type TestProvider } from "../helpers/oidc-provider.ts";
import { addFetch, sandboxSettings, startTestApi } from "./fetch-upstream.ts";
import { assertIsolatedNetns } from "./netns.ts";

const UID_BASE = 350000;
const VENDOR = "testvendor";
const ACCESS_TOKEN_TTL_SECONDS = REFRESH_MARGIN_MS / 1000 + 2;

let provider: TestProvider;
let gateway: TestGateway;
let client: Client;
let upstream: ReturnType<typeof Bun.serve>;
const received: string[] = [];

beforeAll(async () => {
  assertIsolatedNetns();
  const api = startTestApi((request) => {
    received.push(request.headers.get("authorization") ?? "");
    return new Response("seen");
  });
  upstream = api.server;
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  provider = await startOidcProvider({ redirectUri: `${base}/api/v1/oauth/callback`, refreshTokens: true, accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS });
  gateway = await startTestGateway(
    {
      GIG_LISTEN: `127.0.0.1:${port}`,
      GIG_PUBLIC_URL: base,
      ...sandboxSettings("oauth", UID_BASE, 18093),
      ...testVendorApp(provider, "offline_access"),
    },
    { api: true, egress: api.proxy },
  );
  await addFetch(gateway, api.egress, { id: "files", type: "oauth2", vendor: VENDOR, scopes: ["files.read"] });
  client = await connect(`${gateway.url}/mcp/p/main`, await gateway.profile("main", ["fetch"]));

  const apiToken = (await gateway.auth!.createApiToken(gateway.admin.id, { label: "test", scopes: ["write"], expiresInDays: 1 })).token;
  const started = await fetch(`${base}/api/v1/connections/${VENDOR}`, { method: "POST", headers: { authorization: `Bearer ${apiToken}` } });
  const { url } = (await started.json()) as { url: string };
  expect((await fetch(await loginThroughBrowser(url, `${base}/api/v1/oauth/callback`, "alice"))).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await client?.close();
  await gateway?.close();
  await provider?.close();
  upstream?.stop(true);
});

/** The connection's access token as the gateway holds it (opened here only to compare). */
async function currentAccessToken(): Promise<string> {
  const { vault } = openVault({ dataDir: gateway.dataDir, masterKey: undefined, masterKeyFile: undefined }, () => {});
  const record = (await gateway.store.oauthConnections.get(VENDOR, gateway.admin.id))!;
  return (JSON.parse(new TextDecoder().decode(vault.open(record.sealed, oauthConnectionContext(VENDOR, gateway.admin.id)))) as { accessToken: string }).accessToken;
}

function sandboxedFetchEnvironments(): string[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((pid) => {
      try {
        const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
        const environ = readFileSync(`/proc/${pid}/environ`, "utf8");
        return uid >= UID_BASE && uid < UID_BASE + 10_000 && environ.includes("FETCH_BEARER_TOKEN=") ? [environ] : [];
      } catch {
        return [];
      }
    });
}

test("the API receives the connection's current access token, injected by the proxy, before and after a refresh", async () => {
  const first = await currentAccessToken();
  expect(text(await client.callTool({ name: "fetch_fetch", arguments: { url: `https://api.test:${upstream.port}/files` } }))).toBe("seen");
  expect(received.at(-1)).toBe(`Bearer ${first}`);

  const placeholder = await gateway.store.placeholders.getOrCreate("fetch", "files", gateway.admin.id);
  // The server and the sandbox's own processes above it.
  const environments = sandboxedFetchEnvironments();
  expect(environments.length).toBeGreaterThan(0);
  for (const environ of environments) {
    expect(environ).toContain(`FETCH_BEARER_TOKEN=${placeholder}`);
    expect(environ).not.toContain(first);
  }

  await Bun.sleep(ACCESS_TOKEN_TTL_SECONDS * 1000 - REFRESH_MARGIN_MS + 500);
  expect(text(await client.callTool({ name: "fetch_fetch", arguments: { url: `https://api.test:${upstream.port}/files` } }))).toBe("seen");
  const second = await currentAccessToken();
  expect(second).not.toBe(first);
  expect(received.at(-1)).toBe(`Bearer ${second}`);
  expect(provider.grants.filter((grant) => grant === "refresh_token").length).toBe(1);
  expect(sandboxedFetchEnvironments().join("\n")).not.toContain(second);

  // The second injection's record is written after the answer: wait for it.
  let injected: unknown[] = [];
  for (const deadline = Date.now() + 3_000; injected.length < 2 && Date.now() < deadline; await Bun.sleep(20)) {
    injected = (await gateway.store.audit.list({ action: "egress", decision: "inject" })).map((event) => event.detail.credentialId);
  }
  expect(injected).toEqual(["files", "files"]);
});
