/**
 * OAuth apps (admins) and each user's connections to vendors: start a connect
 * flow, the vendor's redirect back, list and revoke. Tokens and client
 * secrets are never returned.
 */
import * as v from "valibot";
import { cookieValue, SESSION_COOKIE } from "../auth/index.ts";
import { OAuthError, type OAuthConnections, type OAuthErrorCode } from "../oauth/index.ts";
import { SCOPE_PATTERN, VENDOR_PATTERN } from "../store/index.ts";
import { ApiError, defineRoute, type Route } from "./route.ts";
import type { ApiAuth } from "./routes.ts";

const STATUS: Record<OAuthErrorCode, number> = {
  unknown_vendor: 400,
  app_not_configured: 409,
  no_servers: 409,
  invalid_state: 400,
  wrong_session: 403,
  vendor_refused: 502,
  invalid_callback: 400,
  not_connected: 404,
  needs_reconnect: 409,
  refresh_failed: 502,
};

async function answering<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof OAuthError) throw new ApiError(STATUS[error.code], error.code, error.message);
    throw error;
  }
}

const vendorParams = v.object({ vendor: v.pipe(v.string(), v.maxLength(64), v.regex(VENDOR_PATTERN, "a vendor slug such as google or stack-exchange")) });
const url = v.pipe(v.string(), v.maxLength(2048), v.url("an https URL"));
const AppBody = v.strictObject({
  clientId: v.pipe(v.string(), v.minLength(1), v.maxLength(512)),
  clientSecret: v.optional(v.nullable(v.pipe(v.string(), v.minLength(1), v.maxLength(4096)))),
  authorizeUrl: v.optional(v.nullable(url)),
  tokenUrl: v.optional(v.nullable(url)),
  revokeUrl: v.optional(v.nullable(url)),
  scopes: v.optional(v.nullable(v.array(v.pipe(v.string(), v.regex(SCOPE_PATTERN, "one OAuth scope token"))))),
  pkce: v.optional(v.nullable(v.boolean())),
});

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);

export function oauthRoutes(deps: { connections: OAuthConnections; auth: ApiAuth }): Route[] {
  const { connections } = deps;
  return [
    defineRoute({
      method: "GET",
      path: "/oauth/apps",
      summary: "OAuth apps registered at vendors (client ids, endpoints, scopes; never secrets), and the redirect URI to register.",
      access: "admin",
      handler: async () => ({ apps: await connections.apps(), redirectUri: connections.redirectUri }),
    }),
    defineRoute({
      method: "PUT",
      path: "/oauth/apps/:vendor",
      summary: "Register or replace a vendor's OAuth app; the client secret is sealed and never returned (omit it to keep the stored one, null for a public client).",
      access: "admin",
      params: vendorParams,
      body: AppBody,
      handler: ({ caller, params, body }) => answering(() => connections.setApp(params.vendor, body, caller.user.email)),
    }),
    defineRoute({
      method: "DELETE",
      path: "/oauth/apps/:vendor",
      summary: "Remove a vendor's stored OAuth app (connections already made keep working until their refresh needs it).",
      access: "admin",
      params: vendorParams,
      status: 204,
      handler: ({ caller, params }) => answering(() => connections.removeApp(params.vendor, caller.user.email)),
    }),
    defineRoute({
      method: "GET",
      path: "/connections",
      summary: "The caller's connections: every vendor an installed server uses, connected, needing reconnection or not connected.",
      access: "user",
      handler: async ({ caller }) => ({ connections: await connections.list(caller.user.id) }),
    }),
    defineRoute({
      method: "POST",
      path: "/connections/:vendor",
      summary: "Start connecting the caller's account at a vendor: returns the URL to open; the vendor redirects back to /api/v1/oauth/callback.",
      access: "user",
      params: vendorParams,
      status: 201,
      handler: ({ caller, params }) =>
        // Started in a browser session, the redirect must come back in that same user's session.
        answering(() => connections.begin(params.vendor, caller.user.id, caller.sessionId ? { sessionUserId: caller.user.id } : {})),
    }),
    defineRoute({
      method: "DELETE",
      path: "/connections/:vendor",
      summary:
        "Disconnect: delete the caller's tokens for a vendor, then ask the vendor to revoke them (RFC 7009). `atVendor` says how that went (revoked, unsupported, failed with a `problem`); the tokens are deleted here in every case.",
      access: "user",
      params: vendorParams,
      handler: async ({ caller, params }) => {
        const result = await answering(() => connections.revoke(params.vendor, caller.user.id, caller.user.email));
        if (!result) throw new ApiError(404, "not_connected", `there is no ${params.vendor} connection to revoke`);
        return { vendor: params.vendor, ...result };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/oauth/callback",
      summary: "Where vendors redirect after consent: checks the state, redeems the code and stores the connection.",
      access: "public",
      produces: "text/html",
      handler: async ({ request }) => {
        const sessionId = cookieValue(request, SESSION_COOKIE);
        const session = sessionId ? await deps.auth.authenticateSession(sessionId, null) : undefined;
        const { vendor } = await answering(() => connections.finish(new URL(request.url).searchParams, session?.user.id));
        const page = `<!doctype html><meta charset="utf-8"><title>Connected</title><p>Connected ${escapeHtml(vendor)}. You can close this window.</p>`;
        return new Response(page, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } });
      },
    }),
  ];
}
