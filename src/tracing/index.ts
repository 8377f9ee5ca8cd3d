/**
 * OpenTelemetry traces, exported over OTLP/HTTP (JSON) when GIG_OTEL_ENDPOINT
 * is set. Spans follow a request through src/log's request scope rather than
 * a context manager of their own: every span that has children gets a scope
 * object, and this module maps scopes to their spans. Off (the default), each
 * function here is one branch and nothing more.
 *
 * Attributes are names the gateway controls (routes as templates, installed
 * servers and tools, fixed outcomes and reasons, hosts a sandbox asked for):
 * never arguments, results, paths, queries or headers.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span, type TextMapGetter, type Tracer } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider, type SpanExporter } from "@opentelemetry/sdk-trace";
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
} from "@opentelemetry/semantic-conventions";
import type { OtelConfig } from "../config/index.ts";
import { currentRequest, withRequest, type Logger, type RequestScope } from "../log/index.ts";

interface Tracing {
  provider: TracerProvider;
  tracer: Tracer;
}

let tracing: Tracing | undefined;
/** The span each request scope stands for (the request's own, or a child's such as a tool call's). */
const spanOfScope = new WeakMap<RequestScope, Span>();

/** Attribute names of the gateway's spans (standard ones where the semantic conventions have them). */
export const TRACE_ATTR = {
  mcpMethod: "mcp.method.name",
  server: "gigmcp.server",
  tool: "gigmcp.tool",
  outcome: "gigmcp.outcome",
  sandbox: "gigmcp.sandbox",
  decision: "gigmcp.egress.decision",
  reason: "gigmcp.egress.reason",
  host: "server.address",
  port: "server.port",
} as const;

/** Reads a caller's W3C `traceparent`/`tracestate`; a malformed one is ignored (a new trace starts). */
const traceContext = new W3CTraceContextPropagator();
const HEADERS: TextMapGetter<Headers> = { get: (headers, key) => headers.get(key) ?? undefined, keys: (headers) => [...headers.keys()] };

/** HTTP methods named in spans; others are "_OTHER" (the semantic conventions' bound). */
const KNOWN_METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]);

/**
 * Starts exporting spans to the collector of `settings` (nothing when unset).
 * Export failures are logged without the request's headers (they hold the credentials).
 */
export function startTracing(settings: OtelConfig | undefined, version: string, log: Logger): void {
  if (!settings || tracing) return;
  const base = settings.endpoint.href.endsWith("/") ? settings.endpoint.href : `${settings.endpoint.href}/`;
  const exporter = new OTLPTraceExporter({ url: new URL("v1/traces", base).href, headers: settings.headers });
  const logged: SpanExporter = {
    export: (spans, done) =>
      exporter.export(spans, (result) => {
        if (result.error) log.warn("could not export traces to GIG_OTEL_ENDPOINT", { error: result.error.message, spans: spans.length });
        done(result);
      }),
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush(),
  };
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: "gigmcp", [ATTR_SERVICE_VERSION]: version }),
    spanProcessors: [new BatchSpanProcessor({ exporter: logged })],
  });
  tracing = { provider, tracer: provider.getTracer("gigmcp", version) };
  log.info("exporting traces", { endpoint: settings.endpoint.origin });
}

/** Exports the spans still queued and stops tracing. */
export async function stopTracing(): Promise<void> {
  const stopping = tracing;
  tracing = undefined;
  // A failed last export was logged by the exporter already; stopping goes on regardless.
  await stopping?.provider.shutdown().catch(() => undefined);
}

/** The span of one HTTP request. */
export interface RequestTrace {
  /** The scope the request is served in (src/log's withRequest). */
  readonly scope: RequestScope;
  /** Ends the span with the route template (never the path) and the status. */
  end(route: string, status: number): void;
}

const IGNORE_END = () => {};

/** Opens the span of an HTTP request as it arrives: in the caller's trace when it sent a `traceparent`, else a new trace. */
export function startRequestTrace(requestId: string, request: Request): RequestTrace {
  if (!tracing) return { scope: { requestId }, end: IGNORE_END };
  const spanMethod = KNOWN_METHODS.has(request.method) ? request.method : "_OTHER";
  const parent = traceContext.extract(ROOT_CONTEXT, request.headers, HEADERS);
  const span = tracing.tracer.startSpan(spanMethod, { kind: SpanKind.SERVER, attributes: { [ATTR_HTTP_REQUEST_METHOD]: spanMethod, "gigmcp.request_id": requestId } }, parent);
  const scope: RequestScope = { requestId, traceId: span.spanContext().traceId };
  spanOfScope.set(scope, span);
  return {
    scope,
    end: (route, status) => {
      span.updateName(`${spanMethod} ${route}`);
      span.setAttributes({ [ATTR_HTTP_ROUTE]: route, [ATTR_HTTP_RESPONSE_STATUS_CODE]: status });
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
  };
}

/** A span being recorded; every method does nothing when tracing is off. */
export interface TraceSpan {
  /** Adds attributes known only later (the tool a name led to, the outcome). */
  note(attributes: Attributes): void;
  /** Ends the span; with `error`, as failed, saying why. */
  end(error?: string): void;
}

const UNTRACED: TraceSpan = { note: () => {}, end: () => {} };

/**
 * Opens a span on behalf of `requests` (default: the request being served):
 * their child when there is one, linked to each when there are several (which
 * one caused it cannot be told), a trace of its own when there is none.
 */
export function startSpan(name: string, attributes: Attributes, requests: readonly RequestScope[] = currentRequestList()): TraceSpan {
  if (!tracing) return UNTRACED;
  const links: Link[] = requests.length > 1 ? requests.flatMap((scope) => spanOfScope.get(scope)?.spanContext() ?? []).map((context) => ({ context })) : [];
  const parent = requests.length === 1 ? contextOf(requests[0]!) : ROOT_CONTEXT;
  return traceSpanOf(tracing.tracer.startSpan(name, { attributes, links }, parent));
}

/**
 * Runs `work` inside a span, a child of the request being served; spans
 * opened meanwhile (in what `work` awaits) become its children. The span
 * fails when `work` throws; `work` may note attributes on it.
 */
export async function inSpan<T>(name: string, attributes: Attributes, work: (span: TraceSpan) => Promise<T>): Promise<T> {
  const parent = currentRequest();
  if (!tracing || !parent) return work(UNTRACED);
  const span = tracing.tracer.startSpan(name, { attributes }, contextOf(parent));
  const traced = traceSpanOf(span);
  const scope: RequestScope = { ...parent };
  spanOfScope.set(scope, span);
  try {
    const result = await withRequest(scope, () => work(traced));
    traced.end();
    return result;
  } catch (error) {
    traced.end(error instanceof Error ? error.message : String(error));
    throw error;
  }
}

/** Notes attributes on the innermost span of the request being served (if traced), failing it with `error`. */
export function noteCurrentSpan(attributes: Attributes, error?: string): void {
  if (!tracing) return;
  const scope = currentRequest();
  const span = scope && spanOfScope.get(scope);
  if (!span) return;
  span.setAttributes(attributes);
  if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
}

function currentRequestList(): RequestScope[] {
  const scope = currentRequest();
  return scope ? [scope] : [];
}

function traceSpanOf(span: Span): TraceSpan {
  let ended = false;
  return {
    note: (attributes) => span.setAttributes(attributes),
    end: (error) => {
      if (ended) return;
      ended = true;
      if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      span.end();
    },
  };
}

function contextOf(scope: RequestScope): Context {
  const span = spanOfScope.get(scope);
  return span ? trace.setSpan(ROOT_CONTEXT, span) : ROOT_CONTEXT;
}
