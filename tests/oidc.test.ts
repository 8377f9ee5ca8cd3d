import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createOidcClient, OidcError, type OidcSettings, type PendingLogin } from "../src/auth/oidc.ts";
import { loginThroughBrowser, startOidcProvider, type TestClient, type TestProvider } from "./helpers/oidc-provider.ts";

let provider: TestProvider;

beforeAll(async () => {
  provider = await startOidcProvider();
});

afterAll(async () => {
  await provider.close();
});

function settingsFor(client: TestClient, overrides: Partial<OidcSettings> = {}): OidcSettings {
  return {
    issuer: provider.issuer,
    clientId: client.clientId,
    clientSecret: client.clientSecret,
    redirectUri: provider.redirectUri,
    scopes: ["openid", "email", "profile", "groups"],
    adminGroups: ["gig-admins"],
    ...overrides,
  };
}

/** Runs the real redirect flow for `login` and returns what the gateway would hold at its callback. */
async function logIn(client: ReturnType<typeof createOidcClient>, login: string): Promise<{ callbackUrl: string; pending: PendingLogin }> {
  const { url, pending } = await client.beginLogin();
  return { callbackUrl: await loginThroughBrowser(url, provider.redirectUri, login), pending };
}

async function failureCode(attempt: Promise<unknown>): Promise<string> {
  try {
    await attempt;
    return "succeeded";
  } catch (error) {
    return error instanceof OidcError ? error.code : `unexpected: ${String(error)}`;
  }
}

/** A fetch that lets the test rewrite the token endpoint's request or response. */
function tamperingFetch(tamper: {
  request?: (init: RequestInit) => RequestInit;
  idToken?: (idToken: string) => Promise<string>;
  onRequest?: (url: string) => void;
}): typeof fetch {
  const wrapped = async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = input instanceof Request ? input.url : input.toString();
    tamper.onRequest?.(url);
    if (!url.endsWith("/token")) return fetch(input, init);
    const response = await fetch(input, tamper.request ? tamper.request(init) : init);
    if (!tamper.idToken || !response.ok) return response;
    const body = (await response.json()) as { id_token: string };
    return Response.json({ ...body, id_token: await tamper.idToken(body.id_token) });
  };
  return wrapped as typeof fetch;
}

/** Re-signs an ID token with a fresh RSA key, keeping (or replacing) the header's kid. */
async function resignWithForeignKey(idToken: string, kid?: string): Promise<string> {
  const [headerPart, payloadPart] = idToken.split(".") as [string, string];
  const header = JSON.parse(Buffer.from(headerPart, "base64url").toString()) as Record<string, unknown>;
  const newHeader = Buffer.from(JSON.stringify({ ...header, alg: "RS256", kid: kid ?? header.kid })).toString("base64url");
  const keyPair = await crypto.subtle.generateKey(
    { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", keyPair.privateKey, new TextEncoder().encode(`${newHeader}.${payloadPart}`));
  return `${newHeader}.${payloadPart}.${Buffer.from(signature).toString("base64url")}`;
}

describe("OIDC login against a real provider", () => {
  test("an admin logs in with an RS256 ID token and gets the admin role", async () => {
    const client = createOidcClient(settingsFor(provider.clients.primary, { allowedEmailDomains: ["Example.com"] }));
    const { url, pending } = await client.beginLogin();
    const authorization = new URL(url);
    expect(authorization.searchParams.get("code_challenge_method")).toBe("S256");
    expect(authorization.searchParams.get("state")).toBe(pending.state);
    expect(authorization.searchParams.get("nonce")).toBe(pending.nonce);

    const callbackUrl = await loginThroughBrowser(url, provider.redirectUri, "alice");
    expect(await client.finishLogin(callbackUrl, pending)).toEqual({
      subject: "alice",
      email: "alice@example.com",
      emailVerified: true,
      name: "Alice Admin",
      groups: ["gig-admins", "staff"],
      role: "admin",
    });
  });

  test("a member logs in with an ES256 ID token and gets the member role", async () => {
    const client = createOidcClient(settingsFor(provider.clients.other));
    const { callbackUrl, pending } = await logIn(client, "bob");
    const identity = await client.finishLogin(callbackUrl, pending);
    expect(identity.role).toBe("member");
    expect(identity.groups).toEqual(["staff"]);
  });

  test("a tampered state is refused", async () => {
    const client = createOidcClient(settingsFor(provider.clients.primary));
    const { callbackUrl, pending } = await logIn(client, "alice");
    const tampered = new URL(callbackUrl);
    // One character changed (to a different one: a state ending in "A" stays unchanged by setting "A").
    tampered.searchParams.set("state", `${pending.state.slice(0, -1)}${pending.state.endsWith("A") ? "B" : "A"}`);
    expect(await failureCode(client.finishLogin(tampered.toString(), pending))).toBe("state_mismatch");
  });

  test("a replayed authorization code is refused", async () => {
    const client = createOidcClient(settingsFor(provider.clients.primary));
    const { callbackUrl, pending } = await logIn(client, "alice");
    await client.finishLogin(callbackUrl, pending);
    expect(await failureCode(client.finishLogin(callbackUrl, pending))).toBe("provider_error");
  });

  test("an ID token with another login's nonce is refused", async () => {
    const client = createOidcClient(settingsFor(provider.clients.primary));
    const { callbackUrl, pending } = await logIn(client, "alice");
    const otherNonce = (await client.beginLogin()).pending.nonce;
    expect(await failureCode(client.finishLogin(callbackUrl, { ...pending, nonce: otherNonce }))).toBe("token_invalid");
  });

  test("an ID token issued to another client is refused", async () => {
    // The other client's code is redeemed with its own credentials, so the provider issues a genuine token whose aud is "another-app".
    const { other } = provider.clients;
    const { callbackUrl, pending } = await logIn(createOidcClient(settingsFor(other)), "alice");
    const redeemAsOtherClient = tamperingFetch({
      request: (init) => ({
        ...init,
        headers: { ...(init.headers as Record<string, string>), authorization: `Basic ${btoa(`${other.clientId}:${other.clientSecret}`)}` },
      }),
    });
    const client = createOidcClient(settingsFor(provider.clients.primary), { fetch: redeemAsOtherClient });
    const error = await client.finishLogin(callbackUrl, pending).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OidcError);
    expect((error as OidcError).code).toBe("token_invalid");
    expect((error as OidcError).message).toContain("aud");
  });

  test("an expired ID token is refused", async () => {
    const inTwoDays = () => Date.now() + 2 * 24 * 3600 * 1000;
    const client = createOidcClient(settingsFor(provider.clients.primary), { now: inTwoDays });
    const { callbackUrl, pending } = await logIn(client, "alice");
    expect(pending.createdAt).toBeGreaterThan(Date.now());
    const error = await client.finishLogin(callbackUrl, pending).catch((caught: unknown) => caught);
    expect((error as OidcError).code).toBe("token_invalid");
    expect((error as OidcError).message).toContain("expired");
  });

  test("a pending login older than ten minutes is refused", async () => {
    const client = createOidcClient(settingsFor(provider.clients.primary));
    const { callbackUrl, pending } = await logIn(client, "alice");
    const stale = { ...pending, createdAt: Date.now() - 11 * 60 * 1000 };
    expect(await failureCode(client.finishLogin(callbackUrl, stale))).toBe("expired_login");
  });

  test("an ID token signed by a foreign key under the provider's kid is refused", async () => {
    const client = createOidcClient(settingsFor(provider.clients.primary), {
      fetch: tamperingFetch({ idToken: (idToken) => resignWithForeignKey(idToken) }),
    });
    const { callbackUrl, pending } = await logIn(client, "alice");
    const error = await client.finishLogin(callbackUrl, pending).catch((caught: unknown) => caught);
    expect((error as OidcError).code).toBe("token_invalid");
    expect((error as OidcError).message).toContain("signature");
  });

  test("an unknown kid refetches the JWKS once, then is refused", async () => {
    let jwksFetches = 0;
    const client = createOidcClient(settingsFor(provider.clients.primary), {
      fetch: tamperingFetch({
        idToken: (idToken) => resignWithForeignKey(idToken, "rotated-key"),
        onRequest: (url) => void (url.endsWith("/jwks") && jwksFetches++),
      }),
    });
    const { callbackUrl, pending } = await logIn(client, "alice");
    expect(await failureCode(client.finishLogin(callbackUrl, pending))).toBe("token_invalid");
    expect(jwksFetches).toBe(2);
  });

  test("an email outside the allowed domains is refused", async () => {
    const client = createOidcClient(settingsFor(provider.clients.primary, { allowedEmailDomains: ["example.com"] }));
    const { callbackUrl, pending } = await logIn(client, "mallory");
    expect(await failureCode(client.finishLogin(callbackUrl, pending))).toBe("email_not_allowed");
  });
});
