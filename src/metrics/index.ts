/**
 * Prometheus metrics of this process, served at /metrics. Every component may
 * record here; none reads. Label values are bounded by construction: server
 * and tool names only of installed servers, reasons and outcomes from fixed
 * lists, routes as their templates, never hosts, paths or client input.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "gigmcp_" });

/** Buckets from 1 ms to 30 s: tool calls, spawns and HTTP requests span this range. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Database statements take microseconds to milliseconds. */
const DB_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1];

export type ToolCallOutcome = "ok" | "error" | "timeout" | "cancelled" | "denied";

/** Stands for a server or tool the profile does not have (a denied call names no real one). */
export const UNKNOWN_LABEL = "(unknown)";

const HTTP_METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]);

export const metrics = {
  toolCalls: new Counter({
    name: "gigmcp_tool_calls_total",
    help: "MCP tool calls by server, tool and outcome (ok, error, timeout, cancelled, denied).",
    labelNames: ["server", "tool", "outcome"] as const,
    registers: [registry],
  }),
  toolCallDuration: new Histogram({
    name: "gigmcp_tool_call_duration_seconds",
    help: "Time from a tools/call reaching the gateway to its answer, by server.",
    labelNames: ["server"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
  sandboxesRunning: new Gauge({
    name: "gigmcp_sandboxes_running",
    help: "Backends (one sandbox each) running now.",
    registers: [registry],
  }),
  sandboxSpawnDuration: new Histogram({
    name: "gigmcp_sandbox_spawn_duration_seconds",
    help: "Time from starting a backend to its answer to initialize.",
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
  sandboxRestarts: new Counter({
    name: "gigmcp_sandbox_restarts_total",
    help: "Backends started again after a crash or a failed start.",
    registers: [registry],
  }),
  sandboxIdleReaps: new Counter({
    name: "gigmcp_sandbox_idle_reaps_total",
    help: "Backends stopped because they had no call for GIG_IDLE_TIMEOUT.",
    registers: [registry],
  }),
  egressDecisions: new Counter({
    name: "gigmcp_egress_decisions_total",
    help: "Egress proxy decisions (allow, deny, inject) by reason.",
    labelNames: ["decision", "reason"] as const,
    registers: [registry],
  }),
  vaultOperations: new Counter({
    name: "gigmcp_vault_operations_total",
    help: "Vault seal, open and rewrap operations by outcome (ok, error).",
    labelNames: ["op", "outcome"] as const,
    registers: [registry],
  }),
  dbQueryDuration: new Histogram({
    name: "gigmcp_db_query_duration_seconds",
    help: "Time of each store operation (repository.method).",
    labelNames: ["operation"] as const,
    buckets: DB_BUCKETS,
    registers: [registry],
  }),
  httpRequests: new Counter({
    name: "gigmcp_http_requests_total",
    help: "HTTP requests by route template, method and status.",
    labelNames: ["route", "method", "status"] as const,
    registers: [registry],
  }),
  httpRequestDuration: new Histogram({
    name: "gigmcp_http_request_duration_seconds",
    help: "Time to the response head (streams may go on), by route template.",
    labelNames: ["route"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
};

/** Counts one HTTP request; `route` is a template such as /mcp/p/:profile, never the raw path. */
export function observeHttpRequest(route: string, method: string, status: number, seconds: number): void {
  metrics.httpRequests.inc({ route, method: HTTP_METHODS.has(method) ? method : "other", status: String(status) });
  metrics.httpRequestDuration.observe({ route }, seconds);
}

/** Times `work` into the histogram's series for `labels`, whether it succeeds or throws. */
export async function timed<T, L extends string>(histogram: Histogram<L>, labels: Partial<Record<L, string>>, work: () => Promise<T>): Promise<T> {
  const stop = histogram.startTimer(labels);
  try {
    return await work();
  } finally {
    stop();
  }
}

export const METRICS_CONTENT_TYPE = registry.contentType;

/** The exposition text of every metric. */
export function metricsText(): Promise<string> {
  return registry.metrics();
}
