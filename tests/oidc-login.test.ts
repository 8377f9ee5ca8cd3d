/**
 * OIDC login through the gateway's own routes against a real provider
 * (oidc-provider on loopback): the redirect to the provider, the provider's
 * login form, the callback, first-login user creation with the role from the
 * groups claim, and a session that works on the API. A callback whose state
 * was tampered with opens no session.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { freePort, startTestGateway, type TestGateway } from "./helpers/gateway.ts";
import { loginThroughBrowser, startOidcProvider, type TestProvider } from "./helpers/oidc-provider.ts";

let provider: TestProvider;
let gateway: TestGateway;
let callbackUri: string;

beforeAll(async () => {
  const port = freePort();
  callbackUri = `http://127.0.0.1:${port}/api/v1/oidc/callback`;
  provider = await startOidcProvider({ redirectUri: callbackUri });
  gateway = await startTestGateway(
    {
      GIG_LISTEN: `127.0.0.1:${port}`,
      GIG_OIDC_ISSUER: provider.issuer,
      GIG_OIDC_CLIENT_ID: provider.clients.primary.clientId,
      GIG_OIDC_CLIENT_SECRET: provider.clients.primary.clientSecret,
      GIG_OIDC_SCOPES: "openid email profile groups",
      GIG_OIDC_ADMIN_GROUPS: "gig-admins",
      GIG_OIDC_ALLOWED_DOMAINS: "example.com",
    },
    { api: true },
  );
});

afterAll(async () => {
  await gateway?.close();
  await provider?.close();
});

/** Starts a login at the gateway: the provider URL it redirects to, and the sealed login cookie it set. */
async function startLogin(): Promise<{ location: string; cookie: string }> {
  const response = await fetch(`${gateway.url}/api/v1/oidc/login`, { redirect: "manual" });
  expect(response.status).toBe(302);
  const cookie = response.headers.get("set-cookie")!;
  expect(cookie).toContain("HttpOnly");
  return { location: response.headers.get("location")!, cookie: cookie.split(";")[0]! };
}

test("log in through the provider: the user is created with the role from its groups, and the session works", async () => {
  const { location, cookie } = await startLogin();
  expect(location).toStartWith(provider.issuer);
  expect(new URL(location).searchParams.get("code_challenge_method")).toBe("S256");
  const callback = await loginThroughBrowser(location, callbackUri, "alice");
  const finished = await fetch(callback, { headers: { cookie }, redirect: "manual" });
  expect(finished.status).toBe(302);
  const session = finished.headers.getSetCookie().find((line) => line.startsWith("gig_session="))!;
  expect(session).toContain("HttpOnly");
  const me = await fetch(`${gateway.url}/api/v1/me`, { headers: { cookie: session.split(";")[0]! } });
  expect(await me.json()).toMatchObject({ email: "alice@example.com", role: "admin" });
  expect(await gateway.store.users.byEmail("alice@example.com")).toMatchObject({ role: "admin" });
  // The page gets the CSRF token from a readable cookie, and with it can change things.
  const csrf = finished.headers.getSetCookie().find((line) => line.startsWith("gig_csrf="))!.split(";")[0]!.split("=")[1]!;
  const created = await fetch(`${gateway.url}/api/v1/profiles`, {
    method: "POST",
    headers: { cookie: session.split(";")[0]!, "x-csrf-token": csrf, "content-type": "application/json" },
    body: JSON.stringify({ name: "from-oidc" }),
  });
  expect(created.status).toBe(201);
});

test("a tampered state, a replayed callback and a login without its cookie open no session", async () => {
  const { location, cookie } = await startLogin();
  const callback = await loginThroughBrowser(location, callbackUri, "bob");
  const tampered = new URL(callback);
  tampered.searchParams.set("state", "forged");
  const refused = await fetch(tampered, { headers: { cookie }, redirect: "manual" });
  expect(refused.status).toBe(401);
  expect(await refused.json()).toMatchObject({ error: { code: "state_mismatch" } });
  expect(refused.headers.getSetCookie().some((line) => line.startsWith("gig_session="))).toBe(false);
  const withoutCookie = await fetch(callback, { redirect: "manual" });
  expect(withoutCookie.status).toBe(400);
  expect(await gateway.store.users.byEmail("bob@example.com")).toBeUndefined();
  const [event] = await gateway.store.audit.list({ limit: 5 });
  expect(event).toMatchObject({ action: "auth.login", decision: "deny" });
});

test("a user outside the allowed email domains is refused", async () => {
  const { location, cookie } = await startLogin();
  const callback = await loginThroughBrowser(location, callbackUri, "mallory");
  const refused = await fetch(callback, { headers: { cookie }, redirect: "manual" });
  expect(refused.status).toBe(401);
  expect(await refused.json()).toMatchObject({ error: { code: "email_not_allowed" } });
});
