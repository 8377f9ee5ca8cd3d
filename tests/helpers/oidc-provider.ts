/** A real OpenID provider (oidc-provider) on loopback, and a scripted browser that logs in through it. */
import { generateKeyPairSync } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** The slice of oidc-provider's API used here (the package ships no type declarations). */
type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => {
  callback(): (request: IncomingMessage, response: ServerResponse) => void;
  on(event: string, listener: (context: never) => void): void;
};

type Payload = Record<string, unknown> & { grantId?: string; uid?: string; userCode?: string };

/** oidc-provider's adapter interface over a map of every model it stores, by "Model:id", that the test can reach into. */
const memoryAdapter = (stored: Map<string, Payload>) =>
  class MemoryAdapter {
    constructor(private readonly model: string) {}
    private key(id: string): string {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: Payload): Promise<void> {
      stored.set(this.key(id), payload);
    }
    async find(id: string): Promise<Payload | undefined> {
      return stored.get(this.key(id));
    }
    async findByUid(uid: string): Promise<Payload | undefined> {
      return [...stored].find(([key, payload]) => key.startsWith(`${this.model}:`) && payload.uid === uid)?.[1];
    }
    async findByUserCode(userCode: string): Promise<Payload | undefined> {
      return [...stored].find(([key, payload]) => key.startsWith(`${this.model}:`) && payload.userCode === userCode)?.[1];
    }
    async consume(id: string): Promise<void> {
      const payload = stored.get(this.key(id));
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string): Promise<void> {
      stored.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      for (const [key, payload] of stored) if (payload.grantId === grantId) stored.delete(key);
    }
  };

export interface TestUser {
  email: string;
  emailVerified: boolean;
  name: string;
  groups: string[];
}

export interface TestClient {
  clientId: string;
  clientSecret: string;
  /** Algorithm the provider signs this client's ID tokens with. */
  idTokenAlg: "RS256" | "ES256";
}

export interface TestProvider {
  issuer: string;
  redirectUri: string;
  clients: { primary: TestClient; other: TestClient };
  /** The grant_type of every token request the provider granted, in order. */
  grants: string[];
  /** Forgets every refresh token issued so far, as a vendor does when the user revokes access. */
  revokeRefreshTokens(): void;
  /** The refresh tokens the provider would still accept (issued, neither used up by rotation nor revoked). */
  liveRefreshTokens(): string[];
  close(): Promise<void>;
}

export interface ProviderOptions {
  /** Where the primary client's logins return (default: a path on the provider that nothing serves). */
  redirectUri?: string;
  /** Lets the primary client use refresh tokens (issued with every code), as OAuth vendors do. */
  refreshTokens?: boolean;
  /** Lifetime of access tokens in seconds (default 600). */
  accessTokenTtlSeconds?: number;
  /**
   * Issues a new refresh token with every refresh and refuses the used one, as
   * many vendors do; using one twice revokes the whole grant (reuse detection).
   */
  rotateRefreshTokens?: boolean;
  /** Holds every token request this long first, as a slow vendor does: concurrent refreshes overlap. */
  tokenDelayMs?: number;
}

/** Scopes besides OpenID's that the provider grants, standing for a vendor's API scopes. */
export const API_SCOPES = ["files.read", "files.write"];

/** Login names accepted by the dev login form, each mapped to its account. */
export const TEST_USERS: Record<string, TestUser> = {
  alice: { email: "alice@example.com", emailVerified: true, name: "Alice Admin", groups: ["gig-admins", "staff"] },
  bob: { email: "bob@example.com", emailVerified: true, name: "Bob Member", groups: ["staff"] },
  mallory: { email: "mallory@elsewhere.test", emailVerified: true, name: "Mallory", groups: ["gig-admins"] },
};

export async function startOidcProvider(options: ProviderOptions = {}): Promise<TestProvider> {
  // Bind first: the issuer URL must carry the port before the provider is built.
  let handler = (_request: IncomingMessage, response: ServerResponse): void => void response.writeHead(503).end();
  const server: Server = createServer((request, response) => handler(request, response));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  // Nothing listens here: the test reads the redirect's Location instead of following it.
  const redirectUri = options.redirectUri ?? `http://127.0.0.1:${port}/callback`;

  const rsaKey = { ...generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" }), kid: "rsa-1", alg: "RS256", use: "sig" };
  const ecKey = { ...generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" }), kid: "ec-1", alg: "ES256", use: "sig" };
  const clients = {
    primary: { clientId: "gigmcp", clientSecret: "primary-secret-for-tests-only", idTokenAlg: "RS256" },
    other: { clientId: "another-app", clientSecret: "other-secret-for-tests-only", idTokenAlg: "ES256" },
  } satisfies TestProvider["clients"];

  // A computed specifier keeps tsc from demanding declarations for the untyped package.
  const stored = new Map<string, Payload>();
  const packageName = "oidc-provider";
  const { default: Provider } = (await import(packageName)) as { default: ProviderConstructor };
  const provider = new Provider(issuer, {
    clients: Object.values(clients).map((client) => ({
      client_id: client.clientId,
      client_secret: client.clientSecret,
      redirect_uris: [redirectUri],
      response_types: ["code"],
      grant_types: options.refreshTokens && client === clients.primary ? ["authorization_code", "refresh_token"] : ["authorization_code"],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: client.idTokenAlg,
    })),
    jwks: { keys: [rsaKey, ecKey] },
    cookies: { keys: ["cookie-signing-key-for-tests-only"] },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"], groups: ["groups"] },
    // Put the scope claims into the ID token itself, as most enterprise providers do.
    conformIdTokenClaims: false,
    // Revocation (RFC 7009) at /token/revocation, authenticated like the token endpoint.
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true, allowedPolicy: async (_context: unknown, client: { clientId: string }, token: { clientId: string }) => token.clientId === client.clientId },
    },
    rotateRefreshToken: options.rotateRefreshTokens ?? false,
    // Explicit lifetimes (seconds) keep the provider from warning about its defaults.
    ttl: { AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600, AccessToken: options.accessTokenTtlSeconds ?? 600, IdToken: 3600, RefreshToken: 3600 },
    scopes: ["openid", "offline_access", ...API_SCOPES],
    issueRefreshToken: async (_context: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed("refresh_token"),
    adapter: memoryAdapter(stored),
    async findAccount(_context: unknown, accountId: string) {
      const user = TEST_USERS[accountId];
      if (!user) return undefined;
      return {
        accountId,
        async claims() {
          return { sub: accountId, email: user.email, email_verified: user.emailVerified, name: user.name, groups: user.groups };
        },
      };
    },
  });
  const callback = provider.callback();
  const tokenDelayMs = options.tokenDelayMs ?? 0;
  handler = (request, response) => {
    if (tokenDelayMs > 0 && request.method === "POST" && request.url === "/token") setTimeout(() => callback(request, response), tokenDelayMs);
    else callback(request, response);
  };
  const grants: string[] = [];
  provider.on("grant.success", (context: { oidc: { params: { grant_type: string } } }) => grants.push(context.oidc.params.grant_type));

  return {
    issuer,
    redirectUri,
    clients,
    grants,
    revokeRefreshTokens: () => {
      for (const key of [...stored.keys()]) if (key.startsWith("RefreshToken:")) stored.delete(key);
    },
    // Opaque tokens are stored under their own value.
    liveRefreshTokens: () => [...stored].filter(([key, payload]) => key.startsWith("RefreshToken:") && !payload.consumed).map(([key]) => key.slice("RefreshToken:".length)),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Plays the browser: follows the provider's redirects with a cookie jar, submits the
 * dev login form as `login` and the consent form, and returns the callback URL.
 */
export async function loginThroughBrowser(authorizationUrl: string, redirectUri: string, login: string): Promise<string> {
  const cookies = new Map<string, string>();
  let request: { url: string; init: RequestInit } = { url: authorizationUrl, init: { method: "GET" } };
  for (let step = 0; step < 20; step++) {
    const headers = new Headers(request.init.headers);
    if (cookies.size > 0) headers.set("cookie", [...cookies].map(([name, value]) => `${name}=${value}`).join("; "));
    const response = await fetch(request.url, { ...request.init, headers, redirect: "manual" });
    for (const setCookie of response.headers.getSetCookie()) {
      const [pair = ""] = setCookie.split(";");
      const separator = pair.indexOf("=");
      cookies.set(pair.slice(0, separator).trim(), pair.slice(separator + 1).trim());
    }
    const location = response.headers.get("location");
    if (response.status >= 300 && response.status < 400 && location) {
      const next = new URL(location, request.url).toString();
      if (next.startsWith(redirectUri)) return next;
      request = { url: next, init: { method: "GET" } };
      continue;
    }
    const html = await response.text();
    if (response.status !== 200) throw new Error(`provider answered HTTP ${response.status} at ${request.url}: ${html.slice(0, 500)}`);
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const prompt = /name="prompt" value="([^"]+)"/.exec(html)?.[1];
    if (!action || !prompt) throw new Error(`no interaction form at ${request.url}: ${html.slice(0, 500)}`);
    const form = new URLSearchParams({ prompt });
    if (prompt === "login") {
      form.set("login", login);
      form.set("password", "any-password");
    }
    request = {
      url: new URL(action.replace(/&amp;/g, "&"), request.url).toString(),
      init: { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form.toString() },
    };
  }
  throw new Error("login did not reach the callback within 20 steps");
}

/** GIG_OAUTH_TESTVENDOR_* settings registering the provider's primary client as the OAuth app of vendor "testvendor". */
export function testVendorApp(provider: TestProvider, scopes?: string): Record<string, string> {
  return {
    GIG_OAUTH_TESTVENDOR_CLIENT_ID: provider.clients.primary.clientId,
    GIG_OAUTH_TESTVENDOR_CLIENT_SECRET: provider.clients.primary.clientSecret,
    GIG_OAUTH_TESTVENDOR_AUTHORIZE_URL: `${provider.issuer}/auth`,
    GIG_OAUTH_TESTVENDOR_TOKEN_URL: `${provider.issuer}/token`,
    ...(scopes === undefined ? {} : { GIG_OAUTH_TESTVENDOR_SCOPES: scopes }),
  };
}
