/**
 * One mechanism for every REST route: its schemas validate the request and
 * document it in OpenAPI, its access rule is enforced before the handler
 * runs, and every failure leaves in one JSON shape.
 */
import * as v from "valibot";
import { AuthError } from "../auth/index.ts";
import { ConflictError, NotFoundError, type User } from "../store/index.ts";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
/** public: anyone; user: a logged-in user or API token; admin: an admin. */
export type Access = "public" | "user" | "admin";
export type Scope = "read" | "write" | "admin";

type AnySchema = v.GenericSchema<unknown, unknown>;

export interface Caller {
  user: User;
  /** API tokens carry scopes; a browser session may do everything its role allows. */
  scopes: Scope[] | "session";
  /** The session id, when the caller is a browser session (for logout). */
  sessionId?: string;
}

export interface RouteContext<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  request: Request;
  /** Set for every route but public ones. */
  caller: Caller;
  /** Response headers the handler wants to add (cookies). */
  headers: Headers;
  ip: string;
}

export interface Route {
  method: Method;
  /** Relative to /api/v1, with :params, e.g. /profiles/:name. */
  path: string;
  summary: string;
  access: Access;
  params?: AnySchema;
  query?: AnySchema;
  body?: AnySchema;
  /** Status of a successful answer (default 200; 201 for creations, 204 for no content). */
  status?: number;
  /** Media type of a successful answer, for routes that return a Response of their own (default application/json). */
  produces?: string;
  handler(context: RouteContext<any, any, any>): Promise<unknown> | unknown;
}

/** Declares a route with typed params, query and body inferred from its schemas. */
export function defineRoute<P extends AnySchema | undefined = undefined, Q extends AnySchema | undefined = undefined, B extends AnySchema | undefined = undefined>(route: {
  method: Method;
  path: string;
  summary: string;
  access: Access;
  params?: P;
  query?: Q;
  body?: B;
  status?: number;
  produces?: string;
  handler(
    context: RouteContext<P extends AnySchema ? v.InferOutput<P> : Record<string, never>, Q extends AnySchema ? v.InferOutput<Q> : Record<string, never>, B extends AnySchema ? v.InferOutput<B> : undefined>,
  ): Promise<unknown> | unknown;
}): Route {
  return route as Route;
}

/** A failure with its HTTP status and a stable code clients can branch on. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

const AUTH_STATUS: Record<string, number> = { invalid_credentials: 401, throttled: 429, weak_password: 400, invalid_request: 400, not_found: 404 };

export function errorResponse(error: unknown, headers: Headers = new Headers()): Response {
  if (error instanceof AuthError && error.retryAfterSeconds !== undefined) headers.set("retry-after", String(error.retryAfterSeconds));
  const known =
    error instanceof ApiError
      ? error
      : error instanceof AuthError
        ? new ApiError(AUTH_STATUS[error.code] ?? 400, error.code, error.message)
      : error instanceof NotFoundError
        ? new ApiError(404, "not_found", error.message)
        : error instanceof ConflictError
          ? new ApiError(409, "conflict", error.message)
          : new ApiError(500, "internal", "internal error: the gateway's log has the details");
  headers.set("content-type", "application/json");
  return new Response(JSON.stringify({ error: { code: known.code, message: known.message, ...(known.details !== undefined && { details: known.details }) } }), {
    status: known.status,
    headers,
  });
}

/** Validates one part of a request; a failure names every bad field. */
export function validated(schema: AnySchema | undefined, value: unknown, part: string): unknown {
  if (!schema) return part === "body" ? undefined : {};
  const result = v.safeParse(schema, value);
  if (result.success) return result.output;
  const details = result.issues.map((issue) => ({ field: v.getDotPath(issue) ?? part, message: issue.message }));
  throw new ApiError(400, "invalid_request", `invalid ${part}: ${details.map((detail) => `${detail.field}: ${detail.message}`).join("; ")}`, details);
}
