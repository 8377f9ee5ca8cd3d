/**
 * One MCP client session on a profile endpoint: an SDK Server on the
 * streamable HTTP transport whose handlers answer from the profile's
 * backends through the aggregator.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  CallToolRequestSchema,
  CallToolResultSchema,
  CompleteRequestSchema,
  CompleteResultSchema,
  EmptyResultSchema,
  ErrorCode,
  GetPromptRequestSchema,
  GetPromptResultSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  LoggingLevelSchema,
  ReadResourceRequestSchema,
  ReadResourceResultSchema,
  RootsListChangedNotificationSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type LoggingLevel,
  type LoggingMessageNotification,
  type Notification,
  type RequestId,
  type ServerNotification,
  type ServerRequest,
} from "@modelcontextprotocol/sdk/types.js";
import * as v from "valibot";
import { currentRequest, currentRequestId, type Logger } from "../log/index.ts";
import type { ToolCallOutcome } from "../metrics/index.ts";
import { inSpan, TRACE_ATTR } from "../tracing/index.ts";
import type { ProfileMember, Server as ServerRecord, TokenGrant } from "../store/index.ts";
import type { Aggregator, Listing, ProfileContext, Target } from "./aggregate.ts";
import type { Catalog } from "./catalog.ts";
import { explainBackendError, RpcError } from "./errors.ts";
import { SessionTransport } from "./http-transport.ts";
import type { Relay } from "./relay.ts";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

export interface SessionOptions {
  grant: TokenGrant;
  catalog: Catalog;
  aggregator: Aggregator;
  relay: Relay;
  log: Logger;
  version: string;
  pageSize: number;
  callTimeoutMs: number;
  /** Called once the transport has assigned the session id (before the initialize answer is sent). */
  onInitialized(session: ClientSession): void;
  onClosed(session: ClientSession): void;
  /** Called once per tools/call, after its answer is known. */
  onToolCall(call: ToolCallRecord): void;
  /** Why the server's credentials cannot serve a call now (an OAuth connection to reconnect): answered as a tool error instead of forwarding. */
  credentialProblem?(server: ServerRecord, tenantId: string): Promise<string | undefined>;
}

/** What is known of one tools/call: never its arguments or result. */
export interface ToolCallRecord {
  profile: string;
  tenantId: string;
  /** The server that owns (or, for a refused call, whose prefix names) the tool; undefined when none does. */
  server: string | undefined;
  /** The server's own name for the tool; undefined when the name asked for led to none. */
  tool: string | undefined;
  /** The name the client asked for (client input: bounded, never a metric label). */
  requested: string;
  outcome: ToolCallOutcome;
  latencyMs: number;
  requestId: string | undefined;
}

const LOG_SEVERITY = new Map(LoggingLevelSchema.options.map((level, index) => [level, index]));

export class ClientSession {
  readonly server: Server;
  readonly transport: SessionTransport;
  lastActivityAt = Date.now();
  private logLevel: LoggingLevel | undefined;
  /** Server ids of the profile as last seen, for routing backend notifications. */
  private serverIds = new Set<string>();
  /** What the profile looked like when the client last heard of it. */
  private fingerprint = "";
  private readonly subscriptions = new Map<string, { member: ProfileMember; release: () => void }>();
  private closed = false;

  constructor(private readonly options: SessionOptions) {
    this.server = new Server(
      { name: "gigmcp", title: `Gig'MCP · ${options.grant.profile.name}`, version: options.version },
      {
        capabilities: {
          tools: { listChanged: true },
          prompts: { listChanged: true },
          resources: { listChanged: true, subscribe: true },
          logging: {},
          completions: {},
        },
        debouncedNotificationMethods: [
          "notifications/tools/list_changed",
          "notifications/prompts/list_changed",
          "notifications/resources/list_changed",
        ],
      },
    );
    this.transport = new SessionTransport({ onInitialized: () => options.onInitialized(this) });
    this.transport.onclose = () => void this.close();
    this.registerHandlers();
  }

  get id(): string | undefined {
    return this.transport.sessionId;
  }

  get tenantId(): string {
    return this.options.grant.profile.tenantId;
  }

  get grant(): TokenGrant {
    return this.options.grant;
  }

  uses(serverId: string): boolean {
    return this.serverIds.has(serverId);
  }

  async start(): Promise<void> {
    await this.server.connect(this.transport);
    this.fingerprint = fingerprint(await this.context());
  }

  handle(request: Request): Promise<Response> {
    this.lastActivityAt = Date.now();
    return this.transport.handleRequest(request);
  }

  /** The profile as it is now; remembers its servers for notification routing. */
  async context(): Promise<ProfileContext> {
    const context = await this.options.catalog.context(this.options.grant.profile);
    this.serverIds = new Set(context.members.map((member) => member.server.id));
    return context;
  }

  /** After a configuration change: tells the client its lists changed if its profile did. */
  async refresh(): Promise<void> {
    const before = this.fingerprint;
    this.fingerprint = fingerprint(await this.context());
    if (before !== "" && before !== this.fingerprint) {
      for (const method of LIST_CHANGED) this.notifyListChanged(method);
    }
  }

  notifyListChanged(method: string): void {
    void this.notify({ method });
  }

  async notify(notification: Notification, relatedRequestId?: RequestId): Promise<void> {
    if (this.closed) return;
    try {
      await this.server.notification(notification as ServerNotification, relatedRequestId === undefined ? undefined : { relatedRequestId });
    } catch (error) {
      this.options.log.debug("could not deliver notification", { session: this.id, method: notification.method, error });
    }
  }

  /** Forwards a log message unless the client asked for a higher level. */
  async sendLog(params: LoggingMessageNotification["params"], relatedRequestId?: RequestId): Promise<void> {
    const severity = LOG_SEVERITY.get(params.level);
    if (severity === undefined) return;
    if (this.logLevel !== undefined && severity < LOG_SEVERITY.get(this.logLevel)!) return;
    await this.notify({ method: "notifications/message", params }, relatedRequestId);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [uri, { member, release }] of this.subscriptions) {
      release();
      void this.unsubscribeBackend(member, uri);
    }
    this.subscriptions.clear();
    this.options.onClosed(this);
    await this.transport.close();
  }

  private registerHandlers(): void {
    const { aggregator } = this.options;
    const server = this.server;

    server.setRequestHandler(SetLevelRequestSchema, async (request) => {
      this.logLevel = request.params.level;
      return {};
    });

    // Roots belong to the client; backends that already asked may want to ask again.
    server.setNotificationHandler(RootsListChangedNotificationSchema, async () => {
      for (const backend of aggregator.running(await this.context())) {
        await backend.client.sendRootsListChanged().catch(() => undefined);
      }
    });

    server.setRequestHandler(ListToolsRequestSchema, async (request, extra) =>
      this.page("tools", await aggregator.tools(await this.context()), request.params?.cursor, extra),
    );
    // One span per call (server, tool, outcome are noted with its record); the backend's start, if any, is its child.
    server.setRequestHandler(CallToolRequestSchema, (request, extra) =>
      inSpan("tools/call", { [TRACE_ATTR.mcpMethod]: "tools/call" }, async () => {
        const started = performance.now();
        const report = (context: ProfileContext | undefined, target: Target | undefined, outcome: ToolCallOutcome) =>
          this.options.onToolCall({
            profile: this.options.grant.profile.name,
            tenantId: this.tenantId,
            server: target?.member.server.name ?? (context && ownerByPrefix(context, request.params.name)),
            tool: target?.name,
            requested: request.params.name.slice(0, MAX_RECORDED_NAME),
            outcome,
            latencyMs: Math.round((performance.now() - started) * 10) / 10,
            requestId: currentRequestId(),
          });
        let context: ProfileContext | undefined;
        let target: Target | undefined;
        try {
          context = await this.context();
          target = await aggregator.resolveTool(context, request.params.name);
          const problem = await this.options.credentialProblem?.(target.member.server, this.tenantId);
          if (problem !== undefined) {
            report(context, target, "error");
            return { content: [{ type: "text" as const, text: problem }], isError: true };
          }
          const result = await this.forward(context, target.member, "tools/call", { ...request.params, name: target.name }, CallToolResultSchema, extra);
          report(context, target, result.isError ? "error" : "ok");
          return result;
        } catch (error) {
          report(context, target, failureOutcome(error, target !== undefined, extra.signal));
          throw error;
        }
      }),
    );

    server.setRequestHandler(ListPromptsRequestSchema, async (request, extra) =>
      this.page("prompts", await aggregator.prompts(await this.context()), request.params?.cursor, extra),
    );
    server.setRequestHandler(GetPromptRequestSchema, async (request, extra) => {
      const context = await this.context();
      const target = await aggregator.resolvePrompt(context, request.params.name);
      return this.forward(context, target.member, "prompts/get", { ...request.params, name: target.name }, GetPromptResultSchema, extra);
    });

    server.setRequestHandler(ListResourcesRequestSchema, async (request, extra) =>
      this.page("resources", await aggregator.resources(await this.context()), request.params?.cursor, extra),
    );
    server.setRequestHandler(ListResourceTemplatesRequestSchema, async (request, extra) =>
      this.page("resourceTemplates", await aggregator.resourceTemplates(await this.context()), request.params?.cursor, extra),
    );
    server.setRequestHandler(ReadResourceRequestSchema, async (request, extra) => {
      const context = await this.context();
      const member = await aggregator.resolveResource(context, request.params.uri);
      return this.forward(context, member, "resources/read", request.params, ReadResourceResultSchema, extra);
    });
    server.setRequestHandler(SubscribeRequestSchema, async (request, extra) => {
      const context = await this.context();
      const { uri } = request.params;
      const member = await aggregator.resolveResource(context, uri);
      const backend = await aggregator.backend(context, member);
      if (this.options.relay.subscribe(backend, this, uri)) {
        await this.forward(context, member, "resources/subscribe", request.params, EmptyResultSchema, extra);
      }
      if (!this.subscriptions.has(uri)) this.subscriptions.set(uri, { member, release: backend.retain() });
      return {};
    });
    server.setRequestHandler(UnsubscribeRequestSchema, async (request) => {
      const { uri } = request.params;
      const subscription = this.subscriptions.get(uri);
      if (subscription) {
        this.subscriptions.delete(uri);
        subscription.release();
        await this.unsubscribeBackend(subscription.member, uri);
      }
      return {};
    });

    server.setRequestHandler(CompleteRequestSchema, async (request, extra) => {
      const context = await this.context();
      const { ref } = request.params;
      if (ref.type === "ref/prompt") {
        const target = await aggregator.resolvePrompt(context, ref.name);
        const params = { ...request.params, ref: { ...ref, name: target.name } };
        return this.forward(context, target.member, "completion/complete", params, CompleteResultSchema, extra);
      }
      const member = await aggregator.resolveTemplate(context, ref.uri);
      return this.forward(context, member, "completion/complete", request.params, CompleteResultSchema, extra);
    });
  }

  private async unsubscribeBackend(member: ProfileMember, uri: string): Promise<void> {
    try {
      const context = await this.options.catalog.context(this.options.grant.profile);
      const backend = await this.options.aggregator.backend(context, member);
      if (this.options.relay.unsubscribe(backend, this, uri)) {
        await backend.request({ method: "resources/unsubscribe", params: { uri } }, EmptyResultSchema);
      }
    } catch (error) {
      this.options.log.debug("could not unsubscribe", { uri, error });
    }
  }

  /**
   * Sends one client request to the member's backend and returns its answer,
   * forwarding progress and cancellation, under the server's deadline.
   */
  private async forward<S extends Parameters<Server["request"]>[1]>(
    context: ProfileContext,
    member: ProfileMember,
    method: string,
    params: Record<string, unknown>,
    schema: S,
    extra: Extra,
  ) {
    const backend = await this.options.aggregator.backend(context, member).catch((error: unknown) => {
      throw new RpcError(ErrorCode.InternalError, error instanceof Error ? error.message : String(error));
    });
    const progressToken = extra._meta?.progressToken;
    const { _meta, ...rest } = params as { _meta?: Record<string, unknown> };
    const { progressToken: _clientToken, ...meta } = _meta ?? {};
    const call = this.options.relay.begin(this, extra.requestId, backend, member.server.timeoutMs ?? this.options.callTimeoutMs, extra.signal);
    try {
      return await backend.request({ method, params: Object.keys(meta).length ? { ...rest, _meta: meta } : rest }, schema, {
        request: currentRequest(),
        signal: call.signal,
        // The call's own deadline governs; the SDK's timer must never fire first.
        timeout: 2 ** 31 - 1,
        onprogress: (progress) => {
          call.touch();
          if (progressToken !== undefined) {
            void extra.sendNotification({ method: "notifications/progress", params: { ...progress, progressToken } });
          }
        },
      });
    } catch (error) {
      throw explainBackendError(error, member.server.name);
    } finally {
      this.options.relay.end(call);
    }
  }

  private page<K extends "tools" | "prompts" | "resources" | "resourceTemplates">(
    field: K,
    listing: Listing<unknown>,
    cursor: string | undefined,
    extra: Extra,
  ) {
    for (const failure of listing.failures) {
      void this.sendLog({ level: "error", logger: "gigmcp", data: `server ${failure.server} is unavailable: ${failure.error}` }, extra.requestId);
    }
    const offset = cursor === undefined ? 0 : decodeCursor(cursor);
    const end = offset + this.options.pageSize;
    const items = listing.items.slice(offset, end);
    return { [field]: items, ...(end < listing.items.length && { nextCursor: encodeCursor(end) }) } as Record<K, unknown[]> & {
      nextCursor?: string;
    };
  }
}

/** Longest tool name, as asked for, that goes into the audit log. */
const MAX_RECORDED_NAME = 256;

/** Why a tools/call failed: refused (no such tool in the profile), cancelled by the client, out of time, or an error. */
function failureOutcome(error: unknown, resolved: boolean, clientSignal: AbortSignal): ToolCallOutcome {
  if (!resolved) return error instanceof RpcError && error.code === ErrorCode.InvalidParams ? "denied" : "error";
  if (clientSignal.aborted) return "cancelled";
  return error instanceof RpcError && error.code === ErrorCode.RequestTimeout ? "timeout" : "error";
}

/** The member a prefixed tool name points at, for refused calls (names are unprefixed otherwise). */
function ownerByPrefix(context: ProfileContext, exposed: string): string | undefined {
  if (!context.profile.prefixTools) return undefined;
  return context.members.find((member) => exposed.startsWith(`${member.server.name}_`))?.server.name;
}

const LIST_CHANGED = ["notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed"];

function fingerprint(context: ProfileContext): string {
  return JSON.stringify(context.members.map(({ server, tools }) => [server.id, server.updatedAt, tools]));
}

const CursorSchema = v.object({ offset: v.pipe(v.number(), v.integer(), v.minValue(0)) });

function encodeCursor(offset: number): string {
  return Buffer.from(JSON.stringify({ offset })).toString("base64url");
}

function decodeCursor(cursor: string): number {
  try {
    return v.parse(CursorSchema, JSON.parse(Buffer.from(cursor, "base64url").toString())).offset;
  } catch {
    throw new RpcError(ErrorCode.InvalidParams, "Invalid cursor: pass back the nextCursor of a previous answer unchanged");
  }
}
