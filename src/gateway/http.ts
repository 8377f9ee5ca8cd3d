/**
 * The HTTP surface: Host/Origin checks against DNS rebinding, bearer
 * authentication, the MCP endpoints, /healthz, /readyz and /metrics, on one
 * Elysia app that the REST API mounts onto later. Every request gets an id
 * (the client's X-Request-Id if valid), returned in X-Request-Id and carried
 * by its logs, its tool calls' audit records and its backends' egress; with
 * tracing on, it also gets a span, the parent of its tool calls' spans.
 */
import { Elysia, type AnyElysia } from "elysia";
import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import { cookieValue, SESSION_COOKIE } from "../auth/index.ts";
import type { Config } from "../config/index.ts";
import { withRequest } from "../log/index.ts";
import { METRICS_CONTENT_TYPE, metricsText, observeHttpRequest } from "../metrics/index.ts";
import { startRequestTrace, type RequestTrace } from "../tracing/index.ts";
import type { Gateway } from "./gateway.ts";
import { dashboardFiles } from "./dashboard.ts";
import { jsonRpcError } from "./errors.ts";
import { RateLimiter } from "./rate-limit.ts";

export interface HttpOptions {
  config: Config;
  version: string;
  /** The REST control plane (src/api), mounted behind the same Host/Origin checks. */
  api?: AnyElysia;
}

/** Largest MCP request body accepted (a JSON-RPC message from a client). */
export const MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024;

const LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "::1"];

/** A client's request id is kept only if it is this safe to log and to echo. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;
/** Route label of requests answered before routing (refused Host/Origin, rate limit, dashboard files). */
const UNROUTED = "(unrouted)";
/** Paths probes and scrapers call: never rate limited. */
const PROBE_PATHS = new Set(["/healthz", "/readyz"]);

/** What is known of a request from its arrival on. */
interface Arrival {
  trace: RequestTrace;
  startedAt: number;
}

export function createHttpApp(gateway: Gateway, options: HttpOptions) {
  const { config, version } = options;
  const trusted = trustedOrigins(config);

  const arrivals = new WeakMap<Request, Arrival>();
  const scopeOf = (request: Request) => arrivals.get(request)?.trace.scope ?? { requestId: crypto.randomUUID() };

  const mcp = (request: Request, profile?: string): Promise<Response> =>
    withRequest(scopeOf(request), async () => {
      const grant = await gateway.authenticate(request);
      // A wrong token and an unknown profile get the same answer.
      if (!grant || (profile !== undefined && grant.profile.name !== profile)) return unauthorized();
      return gateway.handle(request, grant);
    });

  const dashboard = config.dashboard && dashboardFiles(config.dashboard);
  const perCaller = new RateLimiter(config.rateLimit);
  const perAddress = new RateLimiter(config.rateLimitIp);
  setInterval(() => {
    perCaller.sweep();
    perAddress.sweep();
  }, 60_000).unref();

  return new Elysia({ serve: { maxRequestBodySize: MAX_REQUEST_BODY_BYTES, idleTimeout: 120 } })
    .onRequest(({ request, server, set }) => {
      const offered = request.headers.get("x-request-id");
      const requestId = offered !== null && CLIENT_REQUEST_ID.test(offered) ? offered : crypto.randomUUID();
      const arrival = { trace: startRequestTrace(requestId, request), startedAt: performance.now() };
      arrivals.set(request, arrival);
      set.headers["x-request-id"] = requestId;
      const early =
        checkHostAndOrigin(request, trusted) ??
        rateLimited(request, server?.requestIP(request)?.address ?? "", perCaller, perAddress) ??
        dashboard?.(request);
      // Answers given here skip the after-response hook: they are counted now.
      if (early) {
        observeHttpRequest(UNROUTED, request.method, early.status, (performance.now() - arrival.startedAt) / 1000);
        arrival.trace.end(UNROUTED, early.status);
      }
      return early;
    })
    .onAfterResponse(({ request, route, set, responseValue }) => {
      const arrival = arrivals.get(request);
      if (!arrival) return;
      const status = responseValue instanceof Response ? responseValue.status : typeof set.status === "number" ? set.status : 200;
      observeHttpRequest(route || UNROUTED, request.method, status, (performance.now() - arrival.startedAt) / 1000);
      arrival.trace.end(route || UNROUTED, status);
    })
    .get("/metrics", async ({ request }) => {
      // Without a token the endpoint does not exist; a wrong one is refused like any bearer endpoint.
      if (config.metricsToken === undefined) return new Response("Not Found", { status: 404 });
      if (!bearerMatches(request, config.metricsToken)) {
        return new Response("Unauthorized: send GIG_METRICS_TOKEN as Authorization: Bearer <token>\n", {
          status: 401,
          headers: { "WWW-Authenticate": 'Bearer realm="gigmcp-metrics"' },
        });
      }
      return new Response(await metricsText(), { headers: { "content-type": METRICS_CONTENT_TYPE } });
    })
    .get("/readyz", async ({ set }) => {
      const readiness = await gateway.readiness();
      set.status = readiness.ready ? 200 : 503;
      return { status: readiness.ready ? "ready" : "not ready", checks: readiness.checks };
    })
    .get("/healthz", () => ({
      status: "ok",
      version,
      sandbox: config.sandbox,
      ...(config.sandbox === "off" && { warning: "GIG_SANDBOX=off: backends run without isolation; for development only" }),
      ...gateway.health(),
    }))
    .use(options.api ?? new Elysia())
    // Token-only endpoints: advertising OAuth metadata would make clients ignore the static bearer header.
    .all("/.well-known/*", () => new Response("Not Found", { status: 404 }))
    .all("/mcp/p/:profile", ({ request, params }) => mcp(request, params.profile), { parse: "none" })
    .all("/mcp", ({ request }) => mcp(request), { parse: "none" })
    .all("/", ({ request }) => mcp(request), { parse: "none" });
}

/** 429 with Retry-After once the caller (its token or session) or its address has used up its allowance. */
function rateLimited(request: Request, address: string, perCaller: RateLimiter, perAddress: RateLimiter): Response | undefined {
  if (PROBE_PATHS.has(new URL(request.url).pathname)) return undefined;
  const credential = request.headers.get("authorization") ?? cookieValue(request, SESSION_COOKIE);
  const wait = Math.max(perAddress.take(address), credential ? perCaller.take(String(Bun.hash(credential))) : 0);
  if (wait === 0) return undefined;
  return jsonRpcError(429, -32000, `Too many requests: retry in ${wait} s`, { "retry-after": String(wait) });
}

/** Constant-time comparison of the request's bearer token with `expected` (hashed first, so lengths do not leak either). */
function bearerMatches(request: Request, expected: string): boolean {
  const presented = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get("authorization") ?? "")?.[1];
  if (presented === undefined) return false;
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(presented), digest(expected));
}

function unauthorized(): Response {
  return jsonRpcError(401, -32001, "Unauthorized: send the profile's token as Authorization: Bearer <token>", { "WWW-Authenticate": 'Bearer realm="gigmcp"' });
}

interface TrustedOrigins {
  hosts: Set<string>;
  origins: Set<string>;
}

/** The gateway's own names: loopback, the listen address, GIG_PUBLIC_URL and GIG_ALLOWED_ORIGINS. */
function trustedOrigins(config: Config): TrustedOrigins {
  const hosts = new Set(LOOPBACK_HOSTS);
  const origins = new Set(config.allowedOrigins);
  if (config.listen.host !== "") hosts.add(config.listen.host);
  if (config.publicUrl) origins.add(config.publicUrl.origin);
  for (const origin of origins) hosts.add(hostnameOf(new URL(origin).host));
  return { hosts, origins };
}

/** "[::1]:8080" → "::1", "Example.com:80" → "example.com". */
function hostnameOf(host: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed) return bracketed[1]!.toLowerCase();
  return host.replace(/:\d+$/, "").toLowerCase();
}

/**
 * DNS rebinding defence: a browser tricked into sending requests here
 * carries the attacker's name in Host and Origin. IP-literal hosts cannot be
 * rebound, so only names must be the gateway's own; an Origin must be the
 * request's own host or explicitly trusted.
 */
function checkHostAndOrigin(request: Request, trusted: TrustedOrigins): Response | undefined {
  const host = request.headers.get("host");
  if (!host) return forbidden("a Host header is required");
  const hostname = hostnameOf(host);
  if (isIP(hostname) === 0 && !trusted.hosts.has(hostname)) {
    return forbidden(`Host ${hostname} is not this gateway's; set GIG_PUBLIC_URL or GIG_ALLOWED_ORIGINS`);
  }
  const origin = request.headers.get("origin");
  if (origin === null) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return forbidden("the Origin header is not a valid origin");
  }
  if (trusted.origins.has(parsed.origin)) return undefined;
  const originHost = hostnameOf(parsed.host);
  if (parsed.host.toLowerCase() === host.toLowerCase() || (LOOPBACK_HOSTS.includes(originHost) && LOOPBACK_HOSTS.includes(hostname))) {
    return undefined;
  }
  return forbidden(`Origin ${parsed.origin} is not trusted; add it to GIG_ALLOWED_ORIGINS`);
}

function forbidden(message: string): Response {
  return jsonRpcError(403, -32000, `Forbidden: ${message}`);
}
