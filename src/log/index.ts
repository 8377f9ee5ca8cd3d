/**
 * Structured logs: one JSON object per line on stderr (stdout is kept for
 * protocol traffic and audit lines). Callers pass fields, never secrets.
 * Lines written while an HTTP request is being served carry its request id
 * (and, when tracing is on, its trace id).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { LogLevel } from "../config/index.ts";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/**
 * What follows an HTTP request through everything it awaits. src/tracing
 * creates a scope per span, so this one mechanism also carries span parents.
 */
export interface RequestScope {
  readonly requestId: string;
  /** The request's trace, when tracing is on. */
  readonly traceId?: string;
}

const requestContext = new AsyncLocalStorage<RequestScope>();

/** Runs `work` as part of the request `scope`: logs written meanwhile (and in what it awaits) carry its ids. */
export function withRequest<T>(scope: RequestScope, work: () => T): T {
  return requestContext.run(scope, work);
}

/** The request being served, if any. */
export function currentRequest(): RequestScope | undefined {
  return requestContext.getStore();
}

/** The id of the request being served, if any. */
export function currentRequestId(): string | undefined {
  return requestContext.getStore()?.requestId;
}

/**
 * Runs `work` outside any request: for long-lived things a request merely
 * starts (a backend and its output), which must not carry that request's id
 * forever.
 */
export function outsideRequest<T>(work: () => T): T {
  return requestContext.exit(work);
}

export function createLogger(level: LogLevel, base: LogFields = {}, write: (line: string) => unknown = (line) => process.stderr.write(line)): Logger {
  const emit = (at: LogLevel, msg: string, fields?: LogFields) => {
    if (RANK[at] < RANK[level]) return;
    const request = currentRequest();
    const ids = request && { requestId: request.requestId, ...(request.traceId && { traceId: request.traceId }) };
    write(`${JSON.stringify({ time: new Date().toISOString(), level: at, msg, ...ids, ...base, ...fields }, errorReplacer)}\n`);
  };
  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  return value instanceof Error ? value.message : value;
}
