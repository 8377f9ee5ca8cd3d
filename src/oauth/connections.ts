/**
 * OAuth connections: each tenant connects their own account at a vendor once
 * (authorization code with PKCE and state, and a nonce when OpenID), and the
 * gateway keeps a fresh access token for every server whose oauth2 credential
 * names that vendor. Tokens are sealed to (vendor, tenant); the refresh token
 * never leaves this module.
 */
import * as v from "valibot";
import { publicBaseUrl, type Config, type OAuthAppConfig } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { isLoopbackHost } from "../oci/index.ts";
import { SCOPE_PATTERN, VENDOR_PATTERN, type OAuthConnection, type OAuthConnectionRecord, type Server, type Store } from "../store/index.ts";
import { oauthAppContext as appContext, oauthConnectionContext as connectionContext, oauthFlowContext as flowContext, type SealContext, type Vault } from "../vault/index.ts";
import { VENDOR_PRESETS } from "./presets.ts";
import { codeChallenge, constantTimeEqual, randomToken, revokeToken, TokenEndpointError, tokenRequest, type TokenResponse } from "./protocol.ts";

/** How long a started connect flow waits for the vendor's redirect. */
export const FLOW_MAX_AGE_MS = 10 * 60 * 1000;
/** An access token this close to expiry is refreshed before it is used. */
export const REFRESH_MARGIN_MS = 60_000;
/** How long one instance may hold a connection's refresh lease: well past a token request's timeout, so only a crashed refresher's lease runs out. */
export const REFRESH_LEASE_MS = 30_000;
/** How often an instance waiting for another's refresh re-reads the connection. */
const LEASE_POLL_MS = 100;
/** How long a caller waits for another instance's refresh before using the still-valid current token. */
const REFRESH_WAIT_MS = 5_000;

export type OAuthErrorCode =
  | "unknown_vendor"
  | "app_not_configured"
  | "no_servers"
  | "invalid_state"
  | "wrong_session"
  | "vendor_refused"
  | "invalid_callback"
  | "not_connected"
  | "needs_reconnect"
  | "refresh_failed";

/** A refusal whose message says what to do; never carries a token or secret. */
export class OAuthError extends Error {
  override name = "OAuthError";
  constructor(
    readonly code: OAuthErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** What may be shown of an OAuth app: never its client secret. */
export interface OAuthAppView {
  vendor: string;
  clientId: string;
  authorizeUrl: string | null;
  tokenUrl: string | null;
  /** The RFC 7009 endpoint told to revoke the tokens on disconnect; null: the vendor has none (tokens are only deleted here). */
  revokeUrl: string | null;
  scopes: string[];
  pkce: boolean;
  hasClientSecret: boolean;
  /** environment: GIG_OAUTH_<VENDOR>_* (overrides a stored one); stored: `gigmcp oauth-app set` or the API. */
  source: "environment" | "stored";
}

export interface OAuthAppInput {
  clientId: string;
  /** undefined keeps the stored secret; null removes it (a public client). */
  clientSecret?: string | null;
  authorizeUrl?: string | null;
  tokenUrl?: string | null;
  revokeUrl?: string | null;
  scopes?: string[] | null;
  pkce?: boolean | null;
}

/** A vendor as a tenant sees it: connected or not, and the servers that use it. */
export interface ConnectionView {
  vendor: string;
  status: "connected" | "needs_reconnect" | "not_connected";
  scopes: string[];
  expiresAt: number | null;
  problem: string | null;
  /** Installed servers whose oauth2 credential names this vendor. */
  servers: string[];
  /** Whether an admin registered an app for the vendor (else connecting is refused). */
  appConfigured: boolean;
  connectedAt: number | null;
  updatedAt: number | null;
}

/** What a disconnect did at the vendor; the local tokens are deleted whatever it says. */
export interface RevokeResult {
  /** revoked: the vendor confirmed (RFC 7009); unsupported: the vendor has no revocation endpoint; failed: see problem. */
  atVendor: "revoked" | "unsupported" | "failed";
  problem?: string;
}

export interface OAuthConnections {
  /** The redirect URI to register at every vendor. */
  readonly redirectUri: string;
  apps(): Promise<OAuthAppView[]>;
  setApp(vendor: string, input: OAuthAppInput, actor: string): Promise<OAuthAppView>;
  removeApp(vendor: string, actor: string): Promise<void>;
  /** Starts a connect flow; `sessionUserId`: the redirect must come back in this user's browser session. */
  begin(vendor: string, tenantId: string, options?: { sessionUserId?: string }): Promise<{ url: string; expiresAt: number }>;
  /** Completes a flow from the vendor's redirect (its query); the caller's browser session user, if any. */
  finish(query: URLSearchParams, sessionUserId: string | undefined): Promise<{ vendor: string; tenantId: string }>;
  list(tenantId: string): Promise<ConnectionView[]>;
  /**
   * Deletes the tenant's tokens for the vendor, then asks the vendor to revoke
   * them; undefined when there were none.
   */
  revoke(vendor: string, tenantId: string, actor: string): Promise<RevokeResult | undefined>;
  /** A current access token, refreshed ahead of expiry (one refresh at a time per connection, across every instance sharing the database). */
  accessToken(vendor: string, tenantId: string): Promise<string>;
  /**
   * Why a call to this server cannot get its connection's token now (not
   * connected, needs reconnecting), as a message for the caller; undefined
   * when every oauth2 credential it takes from a connection is usable.
   */
  problem(server: Server, tenantId: string, hasOwnValue: (credentialId: string) => Promise<boolean>): Promise<string | undefined>;
  /** Called after a connection's access token changed (entrusted servers holding the old one restart). */
  onRotate(listener: (vendor: string, tenantId: string) => void): void;
}

export interface ConnectionsOptions {
  config: Config;
  store: Store;
  vault: Vault;
  log: Logger;
  /** For tests: fetch with their own trust. */
  fetch?: typeof fetch;
}

interface ConnectionTokens {
  accessToken: string;
  refreshToken?: string;
  expiresAt?: number;
}

interface FlowSecrets {
  verifier: string | null;
  nonce: string | null;
  scopes: string[];
}

/** The app a vendor's flows use: stored or configured, completed by the preset. */
interface EffectiveApp {
  vendor: string;
  clientId: string;
  clientSecret?: string;
  authorizeUrl: string;
  tokenUrl: string;
  revokeUrl?: string;
  scopes: string[];
  pkce: boolean;
  authorizeParams: Record<string, string>;
}

const TokensSchema = v.object({
  accessToken: v.string(),
  refreshToken: v.optional(v.string()),
  expiresAt: v.optional(v.number()),
});
const FlowSchema = v.object({ verifier: v.nullable(v.string()), nonce: v.nullable(v.string()), scopes: v.array(v.string()) });
const IdTokenClaims = v.looseObject({ nonce: v.optional(v.string()), aud: v.union([v.string(), v.array(v.string())]) });


const sha256 = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("hex");

function checkVendor(vendor: string): void {
  if (!VENDOR_PATTERN.test(vendor) || vendor.length > 64) {
    throw new OAuthError("unknown_vendor", `invalid vendor ${JSON.stringify(vendor)}: vendors are lowercase slugs such as google or stack-exchange`);
  }
}

function checkEndpoint(url: string, what: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new OAuthError("app_not_configured", `${what} ${JSON.stringify(url)} is not a URL`);
  }
  if (parsed.protocol !== "https:" && !(parsed.protocol === "http:" && isLoopbackHost(parsed.hostname))) {
    throw new OAuthError("app_not_configured", `${what} ${url} must use https (plain http only on loopback)`);
  }
  return parsed.href;
}

const connectHint = (vendor: string) => `run \`gigmcp connect ${vendor}\` or use Connections in the dashboard`;

export function createConnections(options: ConnectionsOptions): OAuthConnections {
  const { config, store, vault, log } = options;
  const doFetch = options.fetch ?? fetch;
  const redirectUri = `${publicBaseUrl(config)}/api/v1/oauth/callback`;
  const refreshing = new Map<string, Promise<string>>();
  const rotateListeners: ((vendor: string, tenantId: string) => void)[] = [];
  const configured = new Map<string, OAuthAppConfig>(config.oauthApps.map((app) => [app.vendor, app]));

  const seal = (value: unknown, context: SealContext) => {
    const plaintext = new TextEncoder().encode(JSON.stringify(value));
    try {
      return vault.seal(plaintext, context);
    } finally {
      plaintext.fill(0);
    }
  };
  const open = <T>(schema: v.GenericSchema<unknown, T>, sealed: Parameters<Vault["open"]>[0], context: SealContext): T => {
    const plaintext = vault.open(sealed, context);
    try {
      return v.parse(schema, JSON.parse(new TextDecoder().decode(plaintext)));
    } finally {
      plaintext.fill(0);
    }
  };
  const audit = (action: string, decision: "allow" | "deny", tenantId: string | null, actor: string | null, detail: Record<string, unknown>) =>
    store.audit.record({ action, decision, actor, tenantId, detail }).catch((error: unknown) => log.error("could not store an OAuth audit event", { error }));

  async function effectiveApp(vendor: string): Promise<EffectiveApp> {
    checkVendor(vendor);
    const preset = VENDOR_PRESETS[vendor];
    const fromEnvironment = configured.get(vendor);
    const stored = fromEnvironment ? undefined : await store.oauthApps.get(vendor);
    if (!fromEnvironment && !stored) {
      throw new OAuthError(
        "app_not_configured",
        `no OAuth app is registered for ${vendor}: an admin registers one at the vendor and sets it with \`gigmcp oauth-app set ${vendor} --client-id ID\` (or GIG_OAUTH_${vendor.toUpperCase().replaceAll("-", "_")}_CLIENT_ID)`,
      );
    }
    const app = fromEnvironment ?? {
      clientId: stored!.clientId,
      clientSecret: stored!.clientSecret ? new TextDecoder().decode(vault.open(stored!.clientSecret, appContext(vendor))) : undefined,
      authorizeUrl: stored!.authorizeUrl ?? undefined,
      tokenUrl: stored!.tokenUrl ?? undefined,
      revokeUrl: stored!.revokeUrl ?? undefined,
      scopes: stored!.scopes ?? undefined,
      pkce: stored!.pkce ?? undefined,
    };
    const authorizeUrl = app.authorizeUrl ?? preset?.authorizeUrl;
    const tokenUrl = app.tokenUrl ?? preset?.tokenUrl;
    const revokeUrl = app.revokeUrl ?? preset?.revokeUrl;
    if (!authorizeUrl || !tokenUrl) {
      throw new OAuthError("app_not_configured", `${vendor} has no built-in endpoints: set the app's authorize and token URLs (\`gigmcp oauth-app set ${vendor} --authorize-url URL --token-url URL\`)`);
    }
    return {
      vendor,
      clientId: app.clientId,
      ...(app.clientSecret && { clientSecret: app.clientSecret }),
      authorizeUrl: checkEndpoint(authorizeUrl, "the authorize URL"),
      tokenUrl: checkEndpoint(tokenUrl, "the token URL"),
      ...(revokeUrl && { revokeUrl: checkEndpoint(revokeUrl, "the revocation URL") }),
      scopes: app.scopes ?? preset?.scopes ?? [],
      pkce: app.pkce ?? preset?.pkce ?? true,
      authorizeParams: preset?.authorizeParams ?? {},
    };
  }

  /** Servers whose oauth2 credentials take their token from the vendor's connection, with the scopes they declare. */
  async function serversOf(vendor?: string): Promise<{ server: Server; vendor: string; scopes: string[] }[]> {
    return (await store.servers.list()).flatMap((server) =>
      server.credentials
        .filter((spec) => spec.type === "oauth2" && spec.vendor !== undefined && (vendor === undefined || spec.vendor === vendor))
        .map((spec) => ({ server, vendor: spec.vendor!, scopes: spec.scopes ?? [] })),
    );
  }

  /** The union of the scopes the tenant's servers of that vendor declare (those in their profiles; all installed ones if none is). */
  async function scopesFor(vendor: string, tenantId: string, app: EffectiveApp): Promise<string[]> {
    const users = await serversOf(vendor);
    if (users.length === 0) throw new OAuthError("no_servers", `no installed server uses ${vendor}: install one first (\`gigmcp registry search\`)`);
    const inProfiles = new Set<string>();
    for (const profile of await store.profiles.list(tenantId)) {
      for (const member of await store.profiles.members(profile.id)) inProfiles.add(member.server.name);
    }
    const mine = users.filter((user) => inProfiles.has(user.server.name));
    return [...new Set([...(mine.length > 0 ? mine : users).flatMap((user) => user.scopes), ...app.scopes])];
  }

  function viewOf(
    app: { vendor: string; clientId: string; authorizeUrl?: string | null; tokenUrl?: string | null; revokeUrl?: string | null; scopes?: string[] | null; pkce?: boolean | null },
    hasClientSecret: boolean,
    source: OAuthAppView["source"],
  ): OAuthAppView {
    const preset = VENDOR_PRESETS[app.vendor];
    return {
      vendor: app.vendor,
      clientId: app.clientId,
      authorizeUrl: app.authorizeUrl ?? preset?.authorizeUrl ?? null,
      tokenUrl: app.tokenUrl ?? preset?.tokenUrl ?? null,
      revokeUrl: app.revokeUrl ?? preset?.revokeUrl ?? null,
      scopes: app.scopes ?? preset?.scopes ?? [],
      pkce: app.pkce ?? preset?.pkce ?? true,
      hasClientSecret,
      source,
    };
  }

  /** The tokens of a token response as stored: sealed to (vendor, tenant), with the scopes granted and the expiry. */
  function sealTokens(vendor: string, tenantId: string, tokens: TokenResponse, previous: ConnectionTokens | undefined, scopes: string[]) {
    const fresh: ConnectionTokens = {
      accessToken: tokens.access_token,
      // RFC 6749 §6: a server may keep the refresh token; then the old one stays valid.
      ...((tokens.refresh_token ?? previous?.refreshToken) !== undefined && { refreshToken: tokens.refresh_token ?? previous?.refreshToken }),
      ...(tokens.expires_in !== undefined && { expiresAt: Date.now() + tokens.expires_in * 1000 }),
    };
    return {
      fresh,
      stored: {
        scopes: tokens.scope !== undefined ? tokens.scope.split(" ").filter(Boolean) : scopes,
        expiresAt: fresh.expiresAt ?? null,
        sealed: seal(fresh, connectionContext(vendor, tenantId)),
      },
    };
  }

  const connectionKey = (vendor: string, tenantId: string) => `${vendor}\n${tenantId}`;
  const rotated = (vendor: string, tenantId: string) => {
    for (const listener of rotateListeners) listener(vendor, tenantId);
  };
  /**
   * The version of each connection this instance last used: a newer one means
   * another instance refreshed or reconnected it, and this instance's
   * entrusted servers still hold the old token.
   */
  const seenVersions = new Map<string, number>();
  const noticeVersion = (vendor: string, tenantId: string, version: number) => {
    const key = connectionKey(vendor, tenantId);
    const seen = seenVersions.get(key);
    seenVersions.set(key, version);
    if (seen !== undefined && seen !== version) rotated(vendor, tenantId);
  };

  const dueForRefresh = (tokens: ConnectionTokens) => tokens.expiresAt !== undefined && tokens.expiresAt - Date.now() <= REFRESH_MARGIN_MS;

  async function currentTokens(vendor: string, tenantId: string): Promise<{ record: OAuthConnectionRecord; tokens: ConnectionTokens }> {
    const record = await store.oauthConnections.get(vendor, tenantId);
    if (!record) throw new OAuthError("not_connected", `there is no ${vendor} connection for this user: ${connectHint(vendor)}`);
    if (record.status === "needs_reconnect") {
      throw new OAuthError("needs_reconnect", `the ${vendor} connection needs reconnecting (${record.problem ?? "the vendor refused it"}): ${connectHint(vendor)}`);
    }
    noticeVersion(vendor, tenantId, record.version);
    return { record, tokens: open(TokensSchema, record.sealed, connectionContext(vendor, tenantId)) };
  }

  /**
   * Refreshes once across every instance sharing the database: the instance
   * whose conditional update takes the row's lease refreshes; the others
   * re-read the row until its version changes (the new tokens) or the lease
   * runs out. Vendors that rotate refresh tokens invalidate the old one on
   * use, so two refreshes with it would cost the connection.
   */
  async function refresh(vendor: string, tenantId: string): Promise<string> {
    const waitUntil = Date.now() + REFRESH_WAIT_MS;
    for (;;) {
      const { record, tokens } = await currentTokens(vendor, tenantId);
      if (!dueForRefresh(tokens)) return tokens.accessToken;
      const leased = record.refreshingUntil !== null && record.refreshingUntil > Date.now();
      if (!leased && (await store.oauthConnections.claimRefresh(vendor, tenantId, record.version, Date.now() + REFRESH_LEASE_MS))) {
        const refreshed = await refreshLeased(vendor, tenantId, record, tokens);
        if (refreshed !== undefined) return refreshed;
        continue;
      }
      if (Date.now() > waitUntil && tokens.expiresAt! > Date.now()) return tokens.accessToken;
      await Bun.sleep(LEASE_POLL_MS);
    }
  }

  /** The refresh itself, holding the lease; undefined when the connection changed meanwhile (reconnected), so the caller reads it again. */
  async function refreshLeased(vendor: string, tenantId: string, record: OAuthConnectionRecord, current: ConnectionTokens): Promise<string | undefined> {
    const needsReconnect = async (reason: string) => {
      await store.oauthConnections.markNeedsReconnect(vendor, tenantId, reason, record.version);
      await audit("oauth.refresh", "deny", tenantId, vendor, { vendor, reason });
      log.warn("an OAuth connection needs reconnecting", { vendor, tenantId, reason });
      return new OAuthError("needs_reconnect", `the ${vendor} connection needs reconnecting (${reason}): ${connectHint(vendor)}`);
    };
    if (!current.refreshToken) throw await needsReconnect("the access token expired and the vendor issued no refresh token");
    let response: TokenResponse;
    try {
      const app = await effectiveApp(vendor);
      response = await tokenRequest(app.tokenUrl, app, { grant_type: "refresh_token", refresh_token: current.refreshToken }, doFetch);
    } catch (error) {
      if (error instanceof TokenEndpointError && error.rejected) throw await needsReconnect(error.message);
      await store.oauthConnections.releaseRefresh(vendor, tenantId, record.version);
      if (!(error instanceof TokenEndpointError)) throw error;
      // A passing failure (network, 5xx): the token may still be good for a while.
      if (current.expiresAt! > Date.now()) {
        log.warn("an OAuth refresh failed; the current token is still valid", { vendor, tenantId, error: error.message });
        return current.accessToken;
      }
      throw new OAuthError("refresh_failed", `the ${vendor} access token expired and could not be refreshed: ${error.message}; try again`);
    }
    const { fresh, stored } = sealTokens(vendor, tenantId, response, current, record.scopes);
    if (!(await store.oauthConnections.finishRefresh(vendor, tenantId, record.version, stored))) return undefined;
    seenVersions.set(connectionKey(vendor, tenantId), record.version + 1);
    log.info("refreshed an OAuth connection's access token", { vendor, tenantId });
    rotated(vendor, tenantId);
    return fresh.accessToken;
  }

  /** Asks the vendor to revoke the tokens of a connection already deleted here. */
  async function revokeAtVendor(vendor: string, tenantId: string, record: OAuthConnectionRecord): Promise<RevokeResult> {
    let app: EffectiveApp;
    try {
      app = await effectiveApp(vendor);
    } catch (error) {
      if (error instanceof OAuthError) return { atVendor: "failed", problem: error.message };
      throw error;
    }
    if (!app.revokeUrl) return { atVendor: "unsupported" };
    const tokens = open(TokensSchema, record.sealed, connectionContext(vendor, tenantId));
    try {
      // The refresh token first: revoking it ends the whole grant at most vendors (RFC 7009 §2.1).
      if (tokens.refreshToken) await revokeToken(app.revokeUrl, app, tokens.refreshToken, "refresh_token", doFetch);
      await revokeToken(app.revokeUrl, app, tokens.accessToken, "access_token", doFetch);
      return { atVendor: "revoked" };
    } catch (error) {
      log.warn("the vendor did not confirm revoking a disconnected OAuth connection's tokens", { vendor, tenantId, error: (error as Error).message });
      return { atVendor: "failed", problem: `${(error as Error).message}; the tokens were deleted here, revoke the app's access in your ${vendor} account settings` };
    }
  }

  return {
    redirectUri,

    async apps() {
      const stored = await store.oauthApps.list();
      const views = stored.filter((app) => !configured.has(app.vendor)).map((app) => viewOf(app, app.clientSecret !== null, "stored"));
      for (const app of configured.values()) views.push(viewOf(app, app.clientSecret !== undefined, "environment"));
      return views.sort((a, b) => a.vendor.localeCompare(b.vendor));
    },

    async setApp(vendor, input, actor) {
      checkVendor(vendor);
      if (configured.has(vendor)) {
        throw new OAuthError("app_not_configured", `the ${vendor} app comes from GIG_OAUTH_${vendor.toUpperCase().replaceAll("-", "_")}_* variables: change those instead`);
      }
      for (const scope of input.scopes ?? []) {
        if (!SCOPE_PATTERN.test(scope)) throw new OAuthError("app_not_configured", `invalid scope ${JSON.stringify(scope)}: one OAuth scope token each, no spaces or quotes`);
      }
      const previous = await store.oauthApps.get(vendor);
      const clientSecret =
        input.clientSecret === undefined
          ? (previous?.clientSecret ?? null)
          : input.clientSecret === null
            ? null
            : vault.seal(new TextEncoder().encode(input.clientSecret), appContext(vendor));
      const record = await store.oauthApps.set({
        vendor,
        clientId: input.clientId,
        authorizeUrl: input.authorizeUrl ? checkEndpoint(input.authorizeUrl, "the authorize URL") : null,
        tokenUrl: input.tokenUrl ? checkEndpoint(input.tokenUrl, "the token URL") : null,
        revokeUrl: input.revokeUrl ? checkEndpoint(input.revokeUrl, "the revocation URL") : null,
        scopes: input.scopes ?? null,
        pkce: input.pkce ?? null,
        clientSecret,
      });
      await audit("oauth.app.set", "allow", null, actor, { vendor });
      return viewOf(record, record.clientSecret !== null, "stored");
    },

    async removeApp(vendor, actor) {
      checkVendor(vendor);
      await store.oauthApps.remove(vendor);
      await audit("oauth.app.remove", "allow", null, actor, { vendor });
    },

    async begin(vendor, tenantId, { sessionUserId } = {}) {
      const app = await effectiveApp(vendor);
      const scopes = await scopesFor(vendor, tenantId, app);
      await store.oauthFlows.removeStale(Date.now() - FLOW_MAX_AGE_MS);
      const state = randomToken();
      const stateHash = sha256(state);
      const secrets: FlowSecrets = { verifier: app.pkce ? randomToken() : null, nonce: scopes.includes("openid") ? randomToken() : null, scopes };
      const createdAt = Date.now();
      await store.oauthFlows.create({ stateHash, vendor, tenantId, sessionUserId: sessionUserId ?? null, sealed: seal(secrets, flowContext(stateHash, tenantId)), createdAt });
      const url = new URL(app.authorizeUrl);
      for (const [name, value] of Object.entries(app.authorizeParams)) url.searchParams.set(name, value);
      url.searchParams.set("response_type", "code");
      url.searchParams.set("client_id", app.clientId);
      url.searchParams.set("redirect_uri", redirectUri);
      if (scopes.length > 0) url.searchParams.set("scope", scopes.join(" "));
      url.searchParams.set("state", state);
      if (secrets.nonce) url.searchParams.set("nonce", secrets.nonce);
      if (secrets.verifier) {
        url.searchParams.set("code_challenge", await codeChallenge(secrets.verifier));
        url.searchParams.set("code_challenge_method", "S256");
      }
      return { url: url.href, expiresAt: createdAt + FLOW_MAX_AGE_MS };
    },

    async finish(query, sessionUserId) {
      const state = query.get("state");
      // The state is looked up by its hash and consumed: a tampered, unknown or replayed one finds nothing.
      const flow = state ? await store.oauthFlows.take(sha256(state)) : undefined;
      if (!flow || Date.now() - flow.createdAt > FLOW_MAX_AGE_MS) {
        await audit("oauth.connect", "deny", flow?.tenantId ?? null, flow?.vendor ?? null, { reason: flow ? "expired state" : "unknown or used state" });
        throw new OAuthError("invalid_state", "this connect link is unknown, expired or already used: start connecting again");
      }
      const { vendor, tenantId } = flow;
      const refuse = async (code: OAuthErrorCode, reason: string) => {
        await audit("oauth.connect", "deny", tenantId, vendor, { vendor, reason });
        return new OAuthError(code, reason);
      };
      if (flow.sessionUserId !== null && flow.sessionUserId !== sessionUserId) {
        throw await refuse("wrong_session", "this connection was started in another user's session: log in as that user and start connecting again");
      }
      const secrets = open(FlowSchema, flow.sealed, flowContext(flow.stateHash, tenantId));
      const vendorError = query.get("error");
      if (vendorError !== null) {
        throw await refuse("vendor_refused", `${vendor} refused the connection: ${vendorError.slice(0, 100)}${query.get("error_description") ? ` (${query.get("error_description")!.slice(0, 200)})` : ""}`);
      }
      const code = query.get("code");
      if (!code) throw await refuse("invalid_callback", `${vendor}'s redirect carries no authorization code: start connecting again`);
      const app = await effectiveApp(vendor);
      let tokens: TokenResponse;
      try {
        tokens = await tokenRequest(
          app.tokenUrl,
          app,
          { grant_type: "authorization_code", code, redirect_uri: redirectUri, ...(secrets.verifier && { code_verifier: secrets.verifier }) },
          doFetch,
        );
      } catch (error) {
        throw await refuse("vendor_refused", `${(error as Error).message}: start connecting again`);
      }
      if (secrets.nonce !== null) {
        // OIDC Core §3.1.3.7: an ID token taken straight from the token endpoint over TLS needs no signature check, but must carry our nonce.
        const claims = tokens.id_token ? decodeClaims(tokens.id_token) : undefined;
        const audiences = claims ? (typeof claims.aud === "string" ? [claims.aud] : claims.aud) : [];
        if (!claims || claims.nonce === undefined || !constantTimeEqual(claims.nonce, secrets.nonce) || !audiences.includes(app.clientId)) {
          throw await refuse("vendor_refused", `${vendor}'s ID token does not carry this flow's nonce and client: start connecting again`);
        }
      }
      const { stored } = sealTokens(vendor, tenantId, tokens, undefined, secrets.scopes);
      seenVersions.set(connectionKey(vendor, tenantId), await store.oauthConnections.set({ vendor, tenantId, status: "connected", problem: null, ...stored }));
      await audit("oauth.connect", "allow", tenantId, vendor, { vendor, scopes: tokens.scope ?? secrets.scopes.join(" ") });
      rotated(vendor, tenantId);
      return { vendor, tenantId };
    },

    async list(tenantId) {
      const connections = new Map<string, OAuthConnection>((await store.oauthConnections.list(tenantId)).map((connection) => [connection.vendor, connection]));
      const servers = new Map<string, Set<string>>();
      for (const user of await serversOf()) servers.set(user.vendor, (servers.get(user.vendor) ?? new Set()).add(user.server.name));
      const vendors = [...new Set([...servers.keys(), ...connections.keys()])].sort();
      const apps = new Set([...configured.keys(), ...(await store.oauthApps.list()).map((app) => app.vendor)]);
      return vendors.map((vendor): ConnectionView => {
        const connection = connections.get(vendor);
        return {
          vendor,
          status: connection?.status ?? "not_connected",
          scopes: connection?.scopes ?? [],
          expiresAt: connection?.expiresAt ?? null,
          problem: connection?.problem ?? null,
          servers: [...(servers.get(vendor) ?? [])].sort(),
          appConfigured: apps.has(vendor),
          connectedAt: connection?.createdAt ?? null,
          updatedAt: connection?.updatedAt ?? null,
        };
      });
    },

    async revoke(vendor, tenantId, actor) {
      checkVendor(vendor);
      const record = await store.oauthConnections.get(vendor, tenantId);
      // Deleted here first: whatever the vendor answers, this gateway no longer holds or uses the tokens.
      if (!record || !(await store.oauthConnections.remove(vendor, tenantId))) return undefined;
      seenVersions.delete(connectionKey(vendor, tenantId));
      rotated(vendor, tenantId);
      const result = await revokeAtVendor(vendor, tenantId, record);
      await audit("oauth.revoke", "allow", tenantId, actor, { vendor, atVendor: result.atVendor, ...(result.problem && { problem: result.problem }) });
      return result;
    },

    async accessToken(vendor, tenantId) {
      const { tokens } = await currentTokens(vendor, tenantId);
      if (!dueForRefresh(tokens)) return tokens.accessToken;
      const key = connectionKey(vendor, tenantId);
      let running = refreshing.get(key);
      if (!running) {
        running = refresh(vendor, tenantId).finally(() => refreshing.delete(key));
        refreshing.set(key, running);
      }
      return running;
    },

    async problem(server, tenantId, hasOwnValue) {
      for (const spec of server.credentials) {
        if (spec.type !== "oauth2" || spec.vendor === undefined || (await hasOwnValue(spec.id))) continue;
        try {
          await this.accessToken(spec.vendor, tenantId);
        } catch (error) {
          if (error instanceof OAuthError) return error.message;
          throw error;
        }
      }
      return undefined;
    },

    onRotate(listener) {
      rotateListeners.push(listener);
    },
  };
}

function decodeClaims(idToken: string): v.InferOutput<typeof IdTokenClaims> | undefined {
  const payload = idToken.split(".")[1];
  if (!payload || !/^[A-Za-z0-9_-]+$/.test(payload)) return undefined;
  try {
    const parsed = v.safeParse(IdTokenClaims, JSON.parse(Buffer.from(payload, "base64url").toString("utf8")));
    return parsed.success ? parsed.output : undefined;
  } catch {
    return undefined;
  }
}
