/**
 * The MCP side of the gateway: authenticates bearer tokens, keeps client
 * sessions, and wires sessions, the aggregator and the supervisor together.
 */
import type { AnyElysia } from "elysia";
import type { Config } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { metrics, UNKNOWN_LABEL } from "../metrics/index.ts";
import { AuditQueue, hashToken, type Store, type TokenGrant } from "../store/index.ts";
import { Supervisor, type Runner, type SupervisorOptions } from "../supervisor/index.ts";
import { noteCurrentSpan, TRACE_ATTR } from "../tracing/index.ts";
import { Aggregator } from "./aggregate.ts";
import { Catalog } from "./catalog.ts";
import { jsonRpcError, sessionNotFound } from "./errors.ts";
import { Relay } from "./relay.ts";
import { ClientSession, type SessionOptions, type ToolCallRecord } from "./session.ts";

export interface GatewayOptions {
  config: Config;
  store: Store;
  runner: Runner;
  log: Logger;
  version: string;
  /** argv prefix that runs this gigmcp executable (builtin servers are its subcommands). */
  selfCommand: string[];
  /** Items per tools/prompts/resources list page. */
  pageSize?: number;
  credentialEnvironment?: SupervisorOptions["credentialEnvironment"];
  credentialProblem?: SessionOptions["credentialProblem"];
  /** The REST control plane (src/api), served on the same listener. */
  api?: AnyElysia;
  /** Readiness checks besides the database's, by name (e.g. the egress proxy): true when ready. */
  readiness?: Record<string, () => boolean>;
}

/** /readyz: every check passed, and each check's state (names only; causes go to the log). */
export interface Readiness {
  ready: boolean;
  checks: Record<string, "ok" | "failing">;
}

/** Sessions one token may hold open; past it the least recently used is closed. */
const MAX_SESSIONS_PER_TOKEN = 64;
/** Token grants kept in memory at most; past it the cache starts over (only valid tokens are ever cached). */
const MAX_CACHED_GRANTS = 10_000;
/** `last used` of a token is written at most this often. */
const TOKEN_USE_WRITE_INTERVAL_MS = 60_000;
/** A database that takes longer than this to answer a trivial query is not ready. */
const READINESS_DB_TIMEOUT_MS = 2_000;

export class Gateway {
  readonly supervisor: Supervisor;
  readonly catalog: Catalog;
  private readonly aggregator: Aggregator;
  private readonly relay: Relay;
  private readonly sessions = new Map<string, ClientSession>();
  private readonly tokenUseWrittenAt = new Map<string, number>();
  /**
   * Grants of valid tokens by token hash, so a request costs no database lookup. Emptied on every
   * configuration change (token revocations included), the same moment a revoked token's sessions
   * close: a revocation takes effect within the revision poll, here as on other instances.
   */
  private readonly grants = new Map<string, TokenGrant>();
  /** Tool calls are audited in batches, off the call's path. */
  private readonly toolCallAudit: AuditQueue;
  private readonly sweeper: Timer;

  constructor(private readonly options: GatewayOptions) {
    const { config, log } = options;
    this.relay = new Relay(() => this.sessions.values(), log);
    this.supervisor = new Supervisor({
      runner: options.runner,
      hooks: this.relay.hooks,
      log,
      idleTimeoutMs: config.idleTimeoutMs,
      callTimeoutMs: config.callTimeoutMs,
      selfCommand: options.selfCommand,
      version: options.version,
      credentialEnvironment: options.credentialEnvironment,
    });
    this.aggregator = new Aggregator(this.supervisor);
    this.toolCallAudit = new AuditQueue(options.store.audit, (error, lost) =>
      log.error("could not record tool calls in the audit log", { error, lost }),
    );
    this.catalog = new Catalog(options.store, log);
    this.catalog.onChange(() => this.applyConfigurationChange());
    this.sweeper = setInterval(() => this.closeIdleSessions(), Math.min(config.sessionIdleTimeoutMs / 4, 60_000));
    this.sweeper.unref();
  }

  async start(): Promise<void> {
    await this.catalog.start();
  }

  /** The token's grant, or undefined for a missing or invalid one. */
  async authenticate(request: Request): Promise<TokenGrant | undefined> {
    const header = request.headers.get("authorization");
    const match = header && /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) return undefined;
    const token = match[1]!;
    let grant = this.grants.get(hashToken(token));
    if (!grant) {
      grant = await this.options.store.tokens.resolve(token);
      if (!grant) return undefined;
      if (this.grants.size >= MAX_CACHED_GRANTS) this.grants.clear();
      this.grants.set(grant.tokenHash, grant);
    }
    this.noteTokenUse(grant.tokenId);
    return grant;
  }

  /** Serves one MCP HTTP request for an authenticated grant. */
  async handle(request: Request, grant: TokenGrant): Promise<Response> {
    const sessionId = request.headers.get("mcp-session-id");
    if (sessionId !== null) {
      const session = this.sessions.get(sessionId);
      // A session belongs to the token that opened it; to any other it does not exist.
      if (!session || session.grant.tokenId !== grant.tokenId) {
        return sessionNotFound();
      }
      return session.handle(request);
    }
    if (request.method !== "POST") {
      return jsonRpcError(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    }
    const session = new ClientSession({
      grant,
      catalog: this.catalog,
      aggregator: this.aggregator,
      relay: this.relay,
      log: this.options.log,
      version: this.options.version,
      pageSize: this.options.pageSize ?? 500,
      callTimeoutMs: this.options.config.callTimeoutMs,
      onInitialized: (opened) => this.register(opened),
      onClosed: (closed) => closed.id !== undefined && this.sessions.delete(closed.id),
      onToolCall: (call) => this.recordToolCall(call),
      credentialProblem: this.options.credentialProblem,
    });
    await session.start();
    const response = await session.handle(request);
    if (session.id === undefined) await session.close();
    return response;
  }

  /** The running backends, one sandbox each, with uptime and memory now: for the authenticated control plane. */
  backendStatus(): { server: string; tenantId: string; pid: number; startedAt: number; uptimeSeconds: number; memoryBytes: number | null }[] {
    const now = Date.now();
    return this.supervisor.running().map((backend) => ({
      server: backend.server.name,
      tenantId: backend.tenantId,
      pid: backend.pid,
      startedAt: backend.startedAt,
      uptimeSeconds: Math.floor((now - backend.startedAt) / 1000),
      memoryBytes: backend.memoryBytes(),
    }));
  }

  /** The tools a server offers a tenant, as its backend lists them, starting the backend if needed. */
  async serverTools(serverName: string, tenantId: string): Promise<{ name: string; title?: string; description?: string }[]> {
    const backend = await this.supervisor.acquire(await this.options.store.servers.get(serverName), tenantId);
    return (await backend.list("tools")).map(({ name, title, description }) => ({ name, title, description }));
  }

  /** Counts only: /healthz is unauthenticated, so it names no tenant, server or process. */
  health() {
    return { sessions: this.sessions.size, backends: this.supervisor.running().length };
  }

  /** Whether the gateway can serve: the database answers a trivial query in time, and every extra check passes. */
  async readiness(): Promise<Readiness> {
    const checks: Readiness["checks"] = {};
    try {
      let timer: Timer | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${READINESS_DB_TIMEOUT_MS} ms`)), READINESS_DB_TIMEOUT_MS);
      });
      await Promise.race([this.options.store.revision(), timeout]).finally(() => clearTimeout(timer));
      checks.database = "ok";
    } catch (error) {
      this.options.log.warn("readiness: the database does not answer", { error });
      checks.database = "failing";
    }
    for (const [name, check] of Object.entries(this.options.readiness ?? {})) checks[name] = check() ? "ok" : "failing";
    return { ready: Object.values(checks).every((state) => state === "ok"), checks };
  }

  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    this.catalog.stop();
    await Promise.all([...this.sessions.values()].map((session) => session.close()));
    await this.supervisor.close();
    await this.toolCallAudit.flush();
    await this.options.runner.close?.();
  }

  private register(session: ClientSession): void {
    this.sessions.set(session.id!, session);
    const own = [...this.sessions.values()].filter((other) => other.grant.tokenId === session.grant.tokenId);
    if (own.length > MAX_SESSIONS_PER_TOKEN) {
      const oldest = own.reduce((a, b) => (a.lastActivityAt <= b.lastActivityAt ? a : b));
      this.options.log.warn("too many sessions for one token; closing the least recently used", { profile: session.grant.profile.name });
      void oldest.close();
    }
  }

  /** Follows a configuration change: revoked tokens lose their sessions, changed servers restart, clients hear of new lists. */
  private async applyConfigurationChange(): Promise<void> {
    const { store } = this.options;
    this.grants.clear();
    await this.supervisor.reconcile(await store.servers.list());
    for (const session of [...this.sessions.values()]) {
      if (!(await store.tokens.exists(session.grant.tokenId))) {
        this.options.log.info("closing session of a revoked token", { profile: session.grant.profile.name });
        await session.close();
      } else {
        await session.refresh();
      }
    }
  }

  private closeIdleSessions(): void {
    const cutoff = Date.now() - this.options.config.sessionIdleTimeoutMs;
    for (const session of this.sessions.values()) {
      if (session.lastActivityAt < cutoff) void session.close();
    }
  }

  /**
   * One tool call into the metrics, its span, the log and the audit log ("tool.call");
   * the audit write is queued, so it never delays the answer.
   */
  private recordToolCall(call: ToolCallRecord): void {
    const server = call.server ?? UNKNOWN_LABEL;
    metrics.toolCalls.inc({ server, tool: call.tool ?? UNKNOWN_LABEL, outcome: call.outcome });
    metrics.toolCallDuration.observe({ server }, call.latencyMs / 1000);
    noteCurrentSpan(
      { [TRACE_ATTR.server]: server, [TRACE_ATTR.tool]: call.tool ?? UNKNOWN_LABEL, [TRACE_ATTR.outcome]: call.outcome },
      call.outcome === "ok" ? undefined : `tool call ${call.outcome}`,
    );
    const detail = { profile: call.profile, tool: call.tool ?? call.requested, outcome: call.outcome, latencyMs: call.latencyMs, requestId: call.requestId };
    this.options.log.info("tool call", { server: call.server, ...detail });
    this.toolCallAudit.add({ action: "tool.call", decision: call.outcome === "denied" ? "deny" : "allow", actor: call.server ?? null, tenantId: call.tenantId, detail });
  }

  private noteTokenUse(tokenId: string): void {
    const now = Date.now();
    if (now - (this.tokenUseWrittenAt.get(tokenId) ?? 0) < TOKEN_USE_WRITE_INTERVAL_MS) return;
    this.tokenUseWrittenAt.set(tokenId, now);
    void this.options.store.tokens.markUsed(tokenId, now).catch((error: unknown) => {
      this.options.log.warn("could not record token use", { error });
    });
  }
}
