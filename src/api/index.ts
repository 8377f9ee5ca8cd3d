/**
 * The REST control plane under /api/v1: every route from one table, served
 * by Elysia, validated with valibot, documented at /api/v1/openapi.json
 * from the same schemas.
 */
import { Elysia } from "elysia";
import { cookieValue, createOidcClient, SESSION_COOKIE, type Auth } from "../auth/index.ts";
import { publicBaseUrl, type Config } from "../config/index.ts";
import { openApiDocument } from "./openapi.ts";
import { ApiError, errorResponse, validated, type Caller, type Route, type Scope } from "./route.ts";
import { routes, type ApiAuth, type RouteDeps } from "./routes.ts";

export { ApiError, type Route } from "./route.ts";
export type { ApiAuth, RouteDeps } from "./routes.ts";

export const API_PREFIX = "/api/v1";
const MAX_BODY_BYTES = 1024 * 1024;
const API_TOKEN = /^Bearer (gigapi_[A-Za-z0-9_-]+)$/;

/** OIDC login from the configuration, if set; the redirect URI to register at the provider is returned with it. */
export function oidcLogin(config: Config): RouteDeps["oidc"] {
  if (!config.oidc) return undefined;
  const redirectUri = `${publicBaseUrl(config)}${API_PREFIX}/oidc/callback`;
  const { issuer, clientId, clientSecret, scopes, allowedEmailDomains, adminGroups, groupsClaim } = config.oidc;
  return { redirectUri, client: createOidcClient({ issuer, clientId, clientSecret, redirectUri, scopes, allowedEmailDomains, adminGroups, groupsClaim }) };
}

/** The API's view of the auth authority. */
export function apiAuthOf(auth: Auth): ApiAuth {
  return {
    login: (email, password, ip) => auth.login(email, password, ip),
    logout: (sessionId) => auth.logout(sessionId),
    logoutEverywhere: (userId) => auth.logoutEverywhere(userId),
    async authenticateSession(sessionId, csrfToken) {
      const found = await auth.authenticateSession(sessionId);
      return found && { user: found.user, csrfValid: auth.checkCsrf(found.session, csrfToken) };
    },
    authenticateApiToken: (token) => auth.authenticateApiToken(token),
    startSession: (user, ip) => auth.startSession(user, ip),
    createApiToken: (userId, options) => auth.createApiToken(userId, options),
    listApiTokens: (userId) => auth.listApiTokens(userId),
    revokeApiToken: (userId, idOrPrefix) => auth.revokeApiToken(userId, idOrPrefix),
  };
}

export function createApi(deps: RouteDeps) {
  const table = routes(deps);
  const document = openApiDocument(table, { version: deps.version, prefix: API_PREFIX });
  const app = new Elysia({ prefix: API_PREFIX })
    .get("/openapi.json", () => document)
    .get("/docs", () => new Response(docsPage(), { headers: { "content-type": "text/html; charset=utf-8" } }));
  for (const route of table) {
    // Elysia registers on the instance; the accumulated route types are not needed here.
    app.route(route.method, route.path, ({ request, params, server }) => serve(route, request, params, server?.requestIP(request)?.address ?? "", deps.auth), {
      parse: "none",
    });
  }
  return app;
}

async function serve(route: Route, request: Request, rawParams: Record<string, string>, ip: string, auth: ApiAuth): Promise<Response> {
  const headers = new Headers();
  try {
    const caller = route.access === "public" ? undefined : await authenticate(request, route, auth);
    const url = new URL(request.url);
    const params = validated(route.params, rawParams, "path parameters");
    const query = validated(route.query, Object.fromEntries(url.searchParams), "query");
    const body = validated(route.body, route.body ? await jsonBody(request) : undefined, "body");
    const result = await route.handler({ params, query, body, request, caller: caller!, headers, ip });
    if (result instanceof Response) return result;
    const status = route.status ?? 200;
    if (status === 204 || status === 302) return new Response(null, { status, headers });
    headers.set("content-type", "application/json");
    return new Response(JSON.stringify(result), { status, headers });
  } catch (error) {
    return errorResponse(error, headers);
  }
}

/** A session cookie (plus the CSRF header on changes) or an API token with the scope the method needs. */
async function authenticate(request: Request, route: Route, auth: ApiAuth): Promise<Caller> {
  const changes = route.method !== "GET";
  const bearer = API_TOKEN.exec(request.headers.get("authorization") ?? "");
  let caller: Caller | undefined;
  if (bearer) {
    const granted = await auth.authenticateApiToken(bearer[1]!);
    if (!granted) throw new ApiError(401, "unauthenticated", "the API token is unknown, expired or revoked");
    const needed: Scope = route.access === "admin" ? "admin" : changes ? "write" : "read";
    const enough = granted.scopes.includes(needed) || granted.scopes.includes("admin") || (needed === "read" && granted.scopes.includes("write"));
    if (!enough) throw new ApiError(403, "insufficient_scope", `this API token lacks the ${needed} scope`);
    caller = { user: granted.user, scopes: granted.scopes };
  } else {
    const sessionId = cookieValue(request, SESSION_COOKIE);
    const found = sessionId ? await auth.authenticateSession(sessionId, request.headers.get("x-csrf-token")) : undefined;
    if (!found) throw new ApiError(401, "unauthenticated", "log in (POST /api/v1/sessions) or send an API token as Authorization: Bearer gigapi_…");
    // Cookies ride along on cross-site requests; a state change must also prove it read the CSRF token.
    if (changes && !found.csrfValid) throw new ApiError(403, "csrf", "send the session's CSRF token in the X-CSRF-Token header");
    caller = { user: found.user, scopes: "session", sessionId };
  }
  if (route.access === "admin" && caller.user.role !== "admin") throw new ApiError(403, "forbidden", "this needs an admin");
  return caller;
}

async function jsonBody(request: Request): Promise<unknown> {
  if (!(request.headers.get("content-type") ?? "").startsWith("application/json")) {
    throw new ApiError(415, "unsupported_media_type", "send the body as application/json");
  }
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) throw new ApiError(413, "too_large", `bodies are limited to ${MAX_BODY_BYTES} bytes`);
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, "invalid_json", "the body is not valid JSON");
  }
}

/** A self-contained page listing the API from its OpenAPI document (no external scripts). */
function docsPage(): string {
  return `<!doctype html><meta charset="utf-8"><title>Gig'MCP API</title>
<style>body{font:15px system-ui;margin:2rem;max-width:60rem}code{background:#f4f4f4;padding:0 .3em}li{margin:.4em 0}</style>
<h1>Gig'MCP REST API</h1><p>OpenAPI 3.1 document: <a href="${API_PREFIX}/openapi.json"><code>${API_PREFIX}/openapi.json</code></a></p><ul id="routes"></ul>
<script>fetch("${API_PREFIX}/openapi.json").then(r=>r.json()).then(d=>{const ul=document.getElementById("routes");
for(const[p,ops]of Object.entries(d.paths))for(const[m,op]of Object.entries(ops)){const li=document.createElement("li");
li.innerHTML="<code>"+m.toUpperCase()+" ${API_PREFIX}"+p+"</code> — ";li.append(op.summary);ul.append(li);}});</script>`;
}
