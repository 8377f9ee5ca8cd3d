/**
 * The control plane's routes. Everything a member does is scoped to their own
 * tenant by the repositories' tenant arguments; admins may act across tenants
 * where a route says so.
 */
import * as v from "valibot";
import {
  cookieValue,
  CSRF_COOKIE,
  hashPassword,
  OIDC_COOKIE,
  OidcError,
  passwordProblem,
  PENDING_LOGIN_MAX_AGE_MS,
  SESSION_COOKIE,
  type OidcClient,
  type PendingLogin,
} from "../auth/index.ts";
import { LIMIT_RANGES, type Config } from "../config/index.ts";
import { catalogEntry, imageStoreOf, install, openRegistry, planInstall, RegistryError, uninstall, type CatalogEntry, type Registry } from "../registry/index.ts";
import { OciError } from "../oci/index.ts";
import type { AuditEvent, AuditFilter, Store, User } from "../store/index.ts";
import { parseCredentialSecret, sealCredential, type Vault } from "../vault/index.ts";
import type { OAuthConnections } from "../oauth/index.ts";
import { csvDocument } from "./csv.ts";
import { oauthRoutes } from "./oauth-routes.ts";
import { ApiError, defineRoute, type Caller, type Route, type Scope } from "./route.ts";

export interface RouteDeps {
  config: Config;
  store: Store;
  vault: Vault;
  version: string;
  auth: ApiAuth;
  /** Whether the API is reached over https (Secure cookies). */
  secureCookies: boolean;
  /** Login through an OpenID Connect provider, when configured. */
  oidc?: { client: OidcClient; redirectUri: string };
  /** Users' OAuth connections to vendors, and the OAuth apps they use. */
  connections: OAuthConnections;
  /** The gateway's backends, one sandbox per (server, tenant). */
  backends: BackendControl;
}

/** What the API asks of the gateway's backends. */
export interface BackendControl {
  /** The backends running now, with the memory each uses (null if unreadable). */
  running(): { server: string; tenantId: string; pid: number; startedAt: number; uptimeSeconds: number; memoryBytes: number | null }[];
  /** The tools a server offers a tenant, as its backend lists them (started if needed). */
  tools(server: string, tenantId: string): Promise<{ name: string; title?: string; description?: string }[]>;
}

/** What the API needs from the auth authority (src/auth). */
export interface ApiAuth {
  login(email: string, password: string, ip: string): Promise<{ user: User; session: { id: string; csrfToken: string; expiresAt: number } }>;
  logout(sessionId: string): Promise<void>;
  logoutEverywhere(userId: string): Promise<number>;
  /** The user of a live session, and whether `csrfToken` is that session's. */
  authenticateSession(sessionId: string, csrfToken: string | null): Promise<{ user: User; csrfValid: boolean } | undefined>;
  authenticateApiToken(token: string): Promise<{ user: User; scopes: Scope[] } | undefined>;
  startSession(user: User, ip: string): Promise<{ id: string; csrfToken: string; expiresAt: number }>;
  createApiToken(userId: string, options: { label: string; scopes: Scope[]; expiresInDays: number }): Promise<{ token: string; record: ApiTokenView }>;
  listApiTokens(userId: string): Promise<ApiTokenView[]>;
  revokeApiToken(userId: string, idOrPrefix: string): Promise<number>;
}

interface ApiTokenView {
  prefix: string;
  label: string;
  scopes: Scope[];
  createdAt: number;
  expiresAt: number;
  lastUsedAt: number | null;
}

const name = v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "lowercase letters, digits, - and _ (at most 63)"));
/** The catalog reuses one verified index this long, so searching as one types does not download it every time. */
const CATALOG_INDEX_TTL_MS = 60_000;

export function routes(deps: RouteDeps): Route[] {
  const { store } = deps;
  const secure = deps.secureCookies ? "; Secure" : "";
  const pendingContext = { purpose: "oidc-login", id: "pending", tenantId: "" };
  /**
   * The session cookie (HttpOnly) and the CSRF token in a cookie the page can read: a cross-site
   * attacker can send the first but cannot read the second to echo it in X-CSRF-Token.
   */
  const sessionCookies = (headers: Headers, session: { id: string; csrfToken: string; expiresAt: number }) => {
    const expires = `Expires=${new Date(session.expiresAt).toUTCString()}`;
    headers.append("set-cookie", `${SESSION_COOKIE}=${session.id}; Path=/; HttpOnly; SameSite=Lax${secure}; ${expires}`);
    headers.append("set-cookie", `${CSRF_COOKIE}=${session.csrfToken}; Path=/; SameSite=Lax${secure}; ${expires}`);
  };
  const oidc = () => {
    if (!deps.oidc) throw new ApiError(404, "oidc_not_configured", "OIDC login is not configured: set GIG_OIDC_ISSUER and GIG_OIDC_CLIENT_ID");
    return deps.oidc;
  };
  /**
   * Runs work against the registry: a registry or image failure is audited as a denial of `action`,
   * with its reason, and answered with the refusal's status and code and the failure's own message.
   */
  const registryWork = async <T>(caller: Caller, audit: { action: string; detail: Record<string, unknown> }, refusal: { status: number; code: string }, work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof RegistryError) && !(error instanceof OciError)) throw error;
      await store.audit.record({ action: audit.action, decision: "deny", actor: caller.user.email, detail: { ...audit.detail, reason: error.message } });
      throw new ApiError(refusal.status, refusal.code, error.message);
    }
  };
  let catalogIndex: { registry: Registry; until: number } | undefined;
  const catalogRegistry = (): Registry => {
    if (!deps.config.registryUrl || deps.config.registryPublicKeys.length === 0) {
      throw new ApiError(503, "registry_unconfigured", "no registry is configured: set GIG_REGISTRY_URL and GIG_REGISTRY_PUBKEY");
    }
    if (!catalogIndex || catalogIndex.until < Date.now()) catalogIndex = { registry: openRegistry(deps.config), until: Date.now() + CATALOG_INDEX_TTL_MS };
    return catalogIndex.registry;
  };
  return [
    defineRoute({
      method: "GET",
      path: "/health",
      summary: "Liveness: always ok while the process serves.",
      access: "public",
      handler: () => ({ status: "ok" }),
    }),
    defineRoute({
      method: "GET",
      path: "/version",
      summary: "The gateway's version.",
      access: "public",
      handler: () => ({ version: deps.version }),
    }),
    defineRoute({
      method: "POST",
      path: "/sessions",
      summary: "Log in with email and password; sets the session cookie and returns the CSRF token.",
      access: "public",
      body: v.strictObject({ email: v.pipe(v.string(), v.maxLength(320), v.regex(/^[^@\s]+@[^@\s]+$/, "an email address")), password: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)) }),
      status: 201,
      handler: async ({ body, headers, ip }) => {
        const { user, session } = await deps.auth.login(body.email, body.password, ip);
        sessionCookies(headers, session);
        return { user: { id: user.id, email: user.email, role: user.role }, csrfToken: session.csrfToken, expiresAt: session.expiresAt };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/oidc/login",
      summary: "Start a login at the OIDC provider: redirects there (state, nonce and PKCE kept in a sealed cookie).",
      access: "public",
      status: 302,
      handler: async ({ headers }) => {
        const { url, pending } = await oidc().client.beginLogin();
        const sealed = Buffer.from(JSON.stringify(deps.vault.seal(new TextEncoder().encode(JSON.stringify(pending)), pendingContext))).toString("base64url");
        headers.append("set-cookie", `${OIDC_COOKIE}=${sealed}; Path=/api/v1/oidc; HttpOnly; SameSite=Lax${secure}; Max-Age=${PENDING_LOGIN_MAX_AGE_MS / 1000}`);
        headers.set("location", url);
      },
    }),
    defineRoute({
      method: "GET",
      path: "/oidc/callback",
      summary: "Where the OIDC provider returns: checks the answer, creates the user on first login, opens a session.",
      access: "public",
      status: 302,
      handler: async ({ request, headers, ip }) => {
        const sealed = cookieValue(request, OIDC_COOKIE);
        if (!sealed) throw new ApiError(400, "no_login_in_progress", "no OIDC login is in progress in this browser: start at /api/v1/oidc/login");
        let pending: PendingLogin;
        try {
          pending = JSON.parse(new TextDecoder().decode(deps.vault.open(JSON.parse(Buffer.from(sealed, "base64url").toString()), pendingContext)));
        } catch {
          throw new ApiError(400, "no_login_in_progress", "the login cookie is not valid: start again at /api/v1/oidc/login");
        }
        headers.append("set-cookie", `${OIDC_COOKIE}=; Path=/api/v1/oidc; HttpOnly; SameSite=Lax${secure}; Max-Age=0`);
        let identity;
        try {
          identity = await oidc().client.finishLogin(`${oidc().redirectUri}${new URL(request.url).search}`, pending);
        } catch (error) {
          if (!(error instanceof OidcError)) throw error;
          await store.audit.record({ action: "auth.login", decision: "deny", actor: null, detail: { reason: `oidc ${error.code}`, ip } });
          throw new ApiError(401, error.code, error.message);
        }
        const user = (await store.users.byEmail(identity.email)) ?? (await store.users.create({ email: identity.email, role: identity.role }));
        sessionCookies(headers, await deps.auth.startSession(user, ip));
        headers.set("location", "/");
      },
    }),
    defineRoute({
      method: "DELETE",
      path: "/sessions/current",
      summary: "Log out this browser session.",
      access: "user",
      status: 204,
      handler: async ({ caller, headers }) => {
        if (!caller.sessionId) throw new ApiError(400, "not_a_session", "only a browser session can log out; revoke an API token instead");
        await deps.auth.logout(caller.sessionId);
        headers.append("set-cookie", `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`);
      },
    }),
    defineRoute({
      method: "DELETE",
      path: "/sessions",
      summary: "Log out everywhere: end every session of the caller.",
      access: "user",
      status: 204,
      handler: async ({ caller, headers }) => {
        await deps.auth.logoutEverywhere(caller.user.id);
        headers.append("set-cookie", `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`);
      },
    }),
    defineRoute({
      method: "GET",
      path: "/me",
      summary: "The logged-in user.",
      access: "user",
      handler: ({ caller }) => ({ id: caller.user.id, email: caller.user.email, role: caller.user.role }),
    }),
    defineRoute({
      method: "GET",
      path: "/api-tokens",
      summary: "The caller's API tokens, by prefix only.",
      access: "user",
      handler: async ({ caller }) =>
        (await deps.auth.listApiTokens(caller.user.id)).map(({ prefix, label, scopes, createdAt, expiresAt, lastUsedAt }) => ({ prefix, label, scopes, createdAt, expiresAt, lastUsedAt })),
    }),
    defineRoute({
      method: "POST",
      path: "/api-tokens",
      summary: "Create an API token for scripts; the token is in this answer and never again.",
      access: "user",
      body: v.strictObject({
        label: v.pipe(v.string(), v.minLength(1), v.maxLength(100)),
        scopes: v.pipe(v.array(v.picklist(["read", "write", "admin"])), v.minLength(1)),
        expiresInDays: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(365)), 90),
      }),
      status: 201,
      handler: async ({ caller, body }) => {
        if (body.scopes.includes("admin") && caller.user.role !== "admin") throw new ApiError(403, "forbidden", "only admins can create admin-scoped tokens");
        if (caller.scopes !== "session" && !caller.scopes.includes("admin")) throw new ApiError(403, "insufficient_scope", "API tokens are created from a browser session or an admin-scoped token");
        const { token, record } = await deps.auth.createApiToken(caller.user.id, { label: body.label, scopes: body.scopes, expiresInDays: body.expiresInDays });
        return { token, prefix: record.prefix, scopes: record.scopes, expiresAt: record.expiresAt };
      },
    }),
    defineRoute({
      method: "DELETE",
      path: "/api-tokens/:prefix",
      summary: "Revoke one of the caller's API tokens.",
      access: "user",
      params: v.object({ prefix: v.pipe(v.string(), v.minLength(4), v.maxLength(64)) }),
      status: 204,
      handler: async ({ caller, params }) => {
        if ((await deps.auth.revokeApiToken(caller.user.id, params.prefix)) === 0) throw new ApiError(404, "not_found", `no API token ${params.prefix}`);
      },
    }),
    defineRoute({
      method: "GET",
      path: "/profiles",
      summary: "The caller's profiles.",
      access: "user",
      handler: async ({ caller }) => (await store.profiles.list(caller.user.id)).map(({ name, prefixTools, createdAt }) => ({ name, prefixTools, createdAt })),
    }),
    defineRoute({
      method: "POST",
      path: "/profiles",
      summary: "Create a profile (its MCP endpoint is /mcp/p/NAME).",
      access: "user",
      body: v.strictObject({ name, prefixTools: v.optional(v.boolean(), true) }),
      status: 201,
      handler: async ({ caller, body }) => {
        const profile = await store.profiles.create(caller.user.id, body.name, { prefixTools: body.prefixTools });
        return { name: profile.name, prefixTools: profile.prefixTools, createdAt: profile.createdAt };
      },
    }),
    defineRoute({
      method: "DELETE",
      path: "/profiles/:profile",
      summary: "Delete one of the caller's profiles and its tokens.",
      access: "user",
      params: v.object({ profile: name }),
      status: 204,
      handler: async ({ caller, params }) => store.profiles.delete(caller.user.id, params.profile),
    }),
    defineRoute({
      method: "GET",
      path: "/profiles/:profile/servers",
      summary: "The servers of a profile, with their tool selection.",
      access: "user",
      params: v.object({ profile: name }),
      handler: async ({ caller, params }) => {
        const profile = await store.profiles.get(caller.user.id, params.profile);
        return (await store.profiles.members(profile.id)).map((member) => ({ server: member.server.name, tools: member.tools }));
      },
    }),
    defineRoute({
      method: "PUT",
      path: "/profiles/:profile/servers/:server",
      summary: "Add a server to a profile, optionally exposing only some tools.",
      access: "user",
      params: v.object({ profile: name, server: name }),
      body: v.strictObject({ tools: v.optional(v.nullable(v.array(v.pipe(v.string(), v.minLength(1)))), null) }),
      status: 204,
      handler: async ({ caller, params, body }) => {
        const profile = await store.profiles.get(caller.user.id, params.profile);
        await store.profiles.addServer(profile.id, params.server, body.tools);
      },
    }),
    defineRoute({
      method: "DELETE",
      path: "/profiles/:profile/servers/:server",
      summary: "Remove a server from a profile.",
      access: "user",
      params: v.object({ profile: name, server: name }),
      status: 204,
      handler: async ({ caller, params }) => {
        const profile = await store.profiles.get(caller.user.id, params.profile);
        await store.profiles.removeServer(profile.id, params.server);
      },
    }),
    defineRoute({
      method: "GET",
      path: "/profiles/:profile/tokens",
      summary: "A profile's tokens, by prefix only.",
      access: "user",
      params: v.object({ profile: name }),
      handler: async ({ caller, params }) => {
        const profile = await store.profiles.get(caller.user.id, params.profile);
        return (await store.tokens.list(profile.id)).map(({ prefix, label, createdAt, lastUsedAt }) => ({ prefix, label, createdAt, lastUsedAt }));
      },
    }),
    defineRoute({
      method: "POST",
      path: "/profiles/:profile/tokens",
      summary: "Create a profile token; the token is in this answer and never again.",
      access: "user",
      params: v.object({ profile: name }),
      body: v.strictObject({ label: v.optional(v.pipe(v.string(), v.maxLength(100)), "api") }),
      status: 201,
      handler: async ({ caller, params, body }) => {
        const profile = await store.profiles.get(caller.user.id, params.profile);
        const { token, record } = await store.tokens.create(profile.id, body.label);
        await store.audit.record({ action: "token.create", decision: "allow", actor: caller.user.email, tenantId: caller.user.id, detail: { profile: profile.name, prefix: record.prefix } });
        return { token, prefix: record.prefix, label: record.label };
      },
    }),
    defineRoute({
      method: "DELETE",
      path: "/profiles/:profile/tokens/:prefix",
      summary: "Revoke a profile token by its prefix.",
      access: "user",
      params: v.object({ profile: name, prefix: v.pipe(v.string(), v.minLength(4), v.maxLength(64)) }),
      status: 204,
      handler: async ({ caller, params }) => {
        const profile = await store.profiles.get(caller.user.id, params.profile);
        if ((await store.tokens.revoke(profile.id, params.prefix)) === 0) throw new ApiError(404, "not_found", `no token ${params.prefix} in profile ${params.profile}`);
        await store.audit.record({ action: "token.revoke", decision: "allow", actor: caller.user.email, tenantId: caller.user.id, detail: { profile: profile.name, prefix: params.prefix } });
      },
    }),
    defineRoute({
      method: "GET",
      path: "/servers",
      summary: "The servers the gateway can run, with tier, egress and credential needs.",
      access: "user",
      handler: async () =>
        (await store.servers.list()).map((server) => ({
          name: server.name,
          kind: server.kind,
          tier: server.tier,
          egress: server.egress,
          credentials: server.credentials.map(({ id, type }) => ({ id, type })),
          installed: server.installed ? { reference: server.installed.reference, digest: server.installed.digest } : null,
        })),
    }),
    defineRoute({
      method: "GET",
      path: "/catalog",
      summary: "The signed registry's servers (latest versions) with their grants, whether each can be installed and whether it is; ?q= searches, ?category= narrows.",
      access: "user",
      query: v.object({ q: v.optional(v.pipe(v.string(), v.maxLength(200))), category: v.optional(v.pipe(v.string(), v.maxLength(64))) }),
      handler: async ({ caller, query }) => {
        const registry = catalogRegistry();
        const [all, found] = await registryWork(caller, { action: "registry.index", detail: {} }, { status: 502, code: "registry_unavailable" }, () =>
          Promise.all([registry.search(), registry.search(query.q)]),
        );
        const installed = new Map((await store.servers.list()).flatMap((server) => (server.installed ? [[server.name, server.installed] as const] : [])));
        const servers: (CatalogEntry & { installed: { version: string | null; digest: string } | null })[] = found
          .filter((manifest) => query.category === undefined || manifest.category === query.category)
          .map((manifest) => {
            const from = installed.get(manifest.name);
            // The reference is name@version.
            const version = from?.reference.split("@")[1] ?? null;
            return { ...catalogEntry(manifest), installed: from ? { version, digest: from.digest } : null };
          });
        const categories = [...new Set(all.flatMap((manifest) => (manifest.category ? [manifest.category] : [])))].sort();
        return { servers, categories };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/credentials",
      summary: "The caller's credentials: which are set and when, never their values.",
      access: "user",
      handler: async ({ caller }) =>
        (await store.credentials.list(caller.user.id)).map(({ serverName, credentialId, type, createdAt, updatedAt }) => ({ server: serverName, id: credentialId, type, createdAt, updatedAt })),
    }),
    defineRoute({
      method: "PUT",
      path: "/credentials/:server/:id",
      summary: "Set or rotate a credential of a server for the caller; the value is sealed and never returned.",
      access: "user",
      params: v.object({ server: name, id: v.pipe(v.string(), v.minLength(1), v.maxLength(64)) }),
      body: v.strictObject({ type: v.picklist(["api_key", "basic", "oauth2"]), secret: v.pipe(v.string(), v.minLength(1), v.maxLength(16_384)) }),
      status: 204,
      handler: async ({ caller, params, body }) => {
        const server = await store.servers.get(params.server);
        const declared = server.credentials.find((spec) => spec.id === params.id);
        if (!declared) throw new ApiError(404, "not_found", `server ${params.server} declares no credential ${params.id}`);
        if (declared.type !== body.type) throw new ApiError(400, "invalid_request", `credential ${params.id} is of type ${declared.type}, not ${body.type}`);
        let secret;
        try {
          secret = parseCredentialSecret(body.type, body.secret);
        } catch (error) {
          throw new ApiError(400, "invalid_request", (error as Error).message);
        }
        const key = { serverName: server.name, credentialId: params.id, tenantId: caller.user.id };
        await store.credentials.set({ ...key, type: body.type, sealed: sealCredential(deps.vault, key, secret) });
        await store.audit.record({ action: "credential.set", decision: "allow", actor: caller.user.email, tenantId: caller.user.id, detail: { server: server.name, credential: params.id } });
      },
    }),
    defineRoute({
      method: "DELETE",
      path: "/credentials/:server/:id",
      summary: "Delete one of the caller's credentials.",
      access: "user",
      params: v.object({ server: name, id: v.pipe(v.string(), v.minLength(1), v.maxLength(64)) }),
      status: 204,
      handler: async ({ caller, params }) => {
        await store.credentials.remove(params.server, params.id, caller.user.id);
        await store.audit.record({ action: "credential.remove", decision: "allow", actor: caller.user.email, tenantId: caller.user.id, detail: { server: params.server, credential: params.id } });
      },
    }),
    defineRoute({
      method: "GET",
      path: "/audit",
      summary: "Audit events, newest first (page back with ?before=ID); members see their own tenant's, admins every tenant's.",
      access: "user",
      query: auditQuery,
      handler: async ({ caller, query }) => store.audit.list(auditFilter(caller.user, query)),
    }),
    defineRoute({
      method: "GET",
      path: "/audit/stream",
      summary: "New audit events as they are recorded, as server-sent events (same filters and visibility as /audit).",
      access: "user",
      query: auditQuery,
      handler: ({ caller, query, request }) => auditStream(store, auditFilter(caller.user, query), request.signal),
    }),
    defineRoute({
      method: "GET",
      path: "/audit/summary",
      summary: `Tool calls and denials per time bucket from ?since= (ms, default 24 h ago) in buckets of ?bucket= ms (default 1 h; at most ${MAX_SUMMARY_BUCKETS}), oldest first; same visibility as /audit.`,
      access: "user",
      query: v.object({
        since: v.optional(digits),
        bucket: v.optional(v.pipe(digits, v.minValue(1000, "bucket must be at least 1000 ms"), v.maxValue(366 * DAY_MS, "bucket must be at most a year"))),
        tenant: v.optional(v.pipe(v.string(), v.uuid())),
      }),
      handler: async ({ caller, query }) => {
        const now = Date.now();
        const bucketMs = query.bucket ?? HOUR_MS;
        const since = query.since ?? now - DAY_MS;
        if (since > now) throw new ApiError(400, "invalid_request", "since must not be in the future (milliseconds since the epoch)");
        // The last bucket holds the present moment.
        const count = Math.floor((now - since) / bucketMs) + 1;
        if (count > MAX_SUMMARY_BUCKETS) {
          throw new ApiError(400, "too_many_buckets", `since and bucket make ${count} buckets, more than ${MAX_SUMMARY_BUCKETS}: use a later since or a larger bucket`);
        }
        return { bucketMs, buckets: await store.audit.summary({ tenantId: visibleTenant(caller.user, query.tenant), since, bucketMs, count }) };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/audit/verify",
      summary: "Recompute the audit log's hash chain (admins only): events verified, the head, and the first break if any.",
      access: "admin",
      handler: () => store.audit.verify(),
    }),
    defineRoute({
      method: "GET",
      path: "/audit/export",
      summary: `Audit events as a CSV download (same filters and visibility as /audit; at most ${MAX_EXPORT_ROWS} rows, ?limit= fewer).`,
      access: "user",
      query: auditExportQuery,
      produces: "text/csv",
      handler: async ({ caller, query }) => auditCsv(store, auditFilter(caller.user, query)),
    }),
    defineRoute({
      method: "GET",
      path: "/users",
      summary: "Every user (admins only).",
      access: "admin",
      handler: async () => (await store.users.list()).map(({ id, email, role, createdAt }) => ({ id, email, role, createdAt })),
    }),
    defineRoute({
      method: "POST",
      path: "/users",
      summary: "Create a user (admins only); without a password the user logs in through OIDC only.",
      access: "admin",
      body: v.strictObject({
        email: v.pipe(v.string(), v.maxLength(320), v.regex(/^[^@\s]+@[^@\s]+$/, "an email address")),
        role: v.optional(v.picklist(["admin", "member"]), "member"),
        password: v.optional(v.pipe(v.string(), v.maxLength(1024))),
      }),
      status: 201,
      handler: async ({ caller, body }) => {
        const problem = body.password === undefined ? undefined : passwordProblem(body.password, body.email);
        if (problem) throw new ApiError(400, "weak_password", problem);
        const user = await store.users.create({ email: body.email, role: body.role, passwordHash: body.password === undefined ? null : await hashPassword(body.password) });
        await store.audit.record({ action: "user.create", decision: "allow", actor: caller.user.email, tenantId: user.id, detail: { email: user.email, role: user.role } });
        return { id: user.id, email: user.email, role: user.role, createdAt: user.createdAt };
      },
    }),
    defineRoute({
      method: "PATCH",
      path: "/users/:id",
      summary: "Change a user's role (admins only).",
      access: "admin",
      params: v.object({ id: v.pipe(v.string(), v.uuid()) }),
      body: v.strictObject({ role: v.picklist(["admin", "member"]) }),
      status: 204,
      handler: async ({ caller, params, body }) => {
        if (params.id === caller.user.id && body.role !== "admin") throw new ApiError(400, "invalid_request", "admins cannot demote themselves; ask another admin");
        await store.users.setRole(params.id, body.role);
        await store.audit.record({ action: "user.role", decision: "allow", actor: caller.user.email, tenantId: params.id, detail: { role: body.role } });
      },
    }),
    defineRoute({
      method: "POST",
      path: "/servers",
      summary: "Install a server from the signed registry (admins only); `consent: true` accepts the grants `gigmcp registry show` lists.",
      access: "admin",
      body: v.strictObject({
        reference: v.pipe(v.string(), v.minLength(1), v.maxLength(200)),
        consent: v.literal(true, "installing grants egress and credentials: send consent: true after reviewing them"),
        baseUrl: v.optional(v.string()),
        useImage: v.optional(v.boolean(), false),
      }),
      status: 201,
      handler: async ({ caller, body }) => {
        return registryWork(caller, { action: "registry.install", detail: { reference: body.reference } }, { status: 422, code: "install_refused" }, async () => {
          const manifest = await openRegistry(deps.config).resolve(body.reference);
          const plan = await planInstall(store, manifest, { toolspecs: deps.config.registryToolspecs, useImage: body.useImage, baseUrl: body.baseUrl });
          const server = await install(plan, { store, imageStore: imageStoreOf(deps.config.dataDir) });
          await store.audit.record({ action: "registry.install", decision: "allow", actor: caller.user.email, detail: { reference: body.reference, digest: server.installed!.digest } });
          return { name: server.name, tier: server.tier, egress: server.egress, installed: server.installed };
        });
      },
    }),
    defineRoute({
      method: "GET",
      path: "/servers/running",
      summary: "Running sandboxes: the caller's own (admins: everyone's), with server, tenant, pid, start time, uptime and memory in use.",
      access: "user",
      handler: ({ caller }) => deps.backends.running().filter((backend) => caller.user.role === "admin" || backend.tenantId === caller.user.id),
    }),
    defineRoute({
      method: "GET",
      path: "/servers/:server/tools",
      summary: "The tools a server offers the caller, as its backend lists them (started in the caller's sandbox if needed): for picking a profile's tools.",
      access: "user",
      params: v.object({ server: name }),
      handler: async ({ caller, params }) => {
        await store.servers.get(params.server);
        try {
          return await deps.backends.tools(params.server, caller.user.id);
        } catch (error) {
          throw new ApiError(502, "server_unavailable", `server ${params.server} did not list its tools: ${error instanceof Error ? error.message : String(error)}`);
        }
      },
    }),
    defineRoute({
      method: "PATCH",
      path: "/servers/:server",
      summary: "Change a server's call timeout and sandbox limits (admins only); running sandboxes restart with them on next use.",
      access: "admin",
      params: v.object({ server: name }),
      body: v.strictObject({
        timeoutSeconds: v.optional(v.nullable(v.pipe(v.number(), v.minValue(0.1), v.maxValue(86_400)))),
        memoryBytes: v.optional(v.nullable(v.pipe(v.number(), v.integer(), v.minValue(LIMIT_RANGES.memoryBytes.min), v.maxValue(LIMIT_RANGES.memoryBytes.max)))),
        pids: v.optional(v.nullable(v.pipe(v.number(), v.integer(), v.minValue(LIMIT_RANGES.pids.min), v.maxValue(LIMIT_RANGES.pids.max)))),
        cpuWeight: v.optional(v.nullable(v.pipe(v.number(), v.integer(), v.minValue(LIMIT_RANGES.cpuWeight.min), v.maxValue(LIMIT_RANGES.cpuWeight.max)))),
      }),
      status: 204,
      handler: async ({ caller, params, body }) => {
        const { id: _id, createdAt: _created, updatedAt: _updated, ...spec } = await store.servers.get(params.server);
        const limits = { ...spec.limits };
        for (const key of ["memoryBytes", "pids", "cpuWeight"] as const) {
          if (body[key] === null) delete limits[key];
          else if (body[key] !== undefined) limits[key] = body[key];
        }
        const timeoutMs = body.timeoutSeconds === undefined ? spec.timeoutMs : body.timeoutSeconds === null ? null : Math.round(body.timeoutSeconds * 1000);
        await store.servers.upsert({ ...spec, timeoutMs, limits: Object.keys(limits).length > 0 ? limits : null });
        await store.audit.record({ action: "server.configure", decision: "allow", actor: caller.user.email, detail: { server: params.server, ...body } });
      },
    }),
    defineRoute({
      method: "DELETE",
      path: "/servers/:server",
      summary: "Uninstall a server installed from the registry (admins only).",
      access: "admin",
      params: v.object({ server: name }),
      status: 204,
      handler: async ({ caller, params }) => {
        try {
          const server = await uninstall(store, params.server);
          await store.audit.record({ action: "registry.uninstall", decision: "allow", actor: caller.user.email, detail: { reference: server.installed!.reference } });
        } catch (error) {
          if (error instanceof RegistryError) throw new ApiError(400, "not_installed", error.message);
          throw error;
        }
      },
    }),
    ...oauthRoutes(deps),
  ];
}

const digits = v.pipe(v.string(), v.regex(/^\d+$/), v.transform(Number));
const auditQuery = v.object({
  limit: v.optional(v.pipe(digits, v.minValue(1), v.maxValue(1000)), "100"),
  before: v.optional(digits),
  after: v.optional(digits),
  since: v.optional(digits),
  action: v.optional(v.pipe(v.string(), v.maxLength(64))),
  decision: v.optional(v.picklist(["allow", "deny", "inject"])),
  server: v.optional(name),
  tenant: v.optional(v.pipe(v.string(), v.uuid())),
});

const MAX_EXPORT_ROWS = 10_000;
/** The repository's page size, through which an export reads. */
const AUDIT_PAGE = 1000;
const auditExportQuery = v.object({ ...auditQuery.entries, limit: v.optional(v.pipe(digits, v.minValue(1), v.maxValue(MAX_EXPORT_ROWS)), String(MAX_EXPORT_ROWS)) });
const MAX_SUMMARY_BUCKETS = 500;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** Members always see only their own tenant; admins see every tenant, or the one they name. */
function visibleTenant(user: User, tenant: string | undefined): string | undefined {
  return user.role === "admin" ? tenant : user.id;
}

function auditFilter(user: User, query: v.InferOutput<typeof auditQuery>) {
  return {
    tenantId: visibleTenant(user, query.tenant),
    limit: query.limit as number,
    beforeId: query.before,
    afterId: query.after,
    since: query.since,
    action: query.action,
    decision: query.decision,
    actor: query.server,
  };
}

/** The filter's events as CSV, read page by page up to its limit: newest first, or oldest first after ?after=. */
async function auditCsv(store: Store, filter: AuditFilter & { limit: number }): Promise<Response> {
  const events: AuditEvent[] = [];
  let page = filter;
  while (events.length < filter.limit) {
    const wanted = Math.min(AUDIT_PAGE, filter.limit - events.length);
    const found = await store.audit.list({ ...page, limit: wanted });
    events.push(...found);
    if (found.length < wanted) break;
    const lastId = found.at(-1)!.id;
    page = filter.afterId === undefined ? { ...page, beforeId: lastId } : { ...page, afterId: lastId };
  }
  const rows = events.map((event) => [String(event.id), new Date(event.time).toISOString(), event.action, event.decision, event.actor ?? "", event.tenantId ?? "", JSON.stringify(event.detail)]);
  return new Response(csvDocument(["id", "time", "action", "decision", "actor", "tenant", "detail"], rows), {
    headers: { "content-type": "text/csv; charset=utf-8", "content-disposition": 'attachment; filename="gigmcp-audit.csv"', "cache-control": "no-store" },
  });
}

/** Polls the store for events after the newest one sent; ends when the client goes away. */
function auditStream(store: Store, filter: ReturnType<typeof auditFilter>, signal: AbortSignal): Response {
  const encoder = new TextEncoder();
  let lastId = filter.afterId;
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      // The opening comment gets the headers out at once.
      controller.enqueue(encoder.encode(": audit stream\n\n"));
      if (lastId === undefined) lastId = (await store.audit.list({ ...filter, afterId: undefined, beforeId: undefined, limit: 1 }))[0]?.id ?? 0;
      while (!signal.aborted) {
        const events: AuditEvent[] = await store.audit.list({ ...filter, afterId: lastId, beforeId: undefined });
        for (const event of events) {
          controller.enqueue(encoder.encode(`id: ${event.id}\nevent: audit\ndata: ${JSON.stringify(event)}\n\n`));
          lastId = event.id;
        }
        await Bun.sleep(500);
      }
      controller.close();
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-store" } });
}
