/**
 * The MCP side of the gateway: authenticates bearer tokens, keeps client
 * sessions, and wires sessions, the aggregator and the supervisor together.
 */
import type { AnyElysia } from "elysia";
import type { Config } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import type { Store, TokenGrant } from "../store/index.ts";
import { Supervisor, type Runner, type SupervisorOptions } from "../supervisor/index.ts";
import { Aggregator } from "./aggregate.ts";
import { Catalog } from "./catalog.ts";
import { Relay } from "./relay.ts";
import { ClientSession } from "./session.ts";

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
  /** The REST control plane (src/api), served on the same listener. */
  api?: AnyElysia;
}

/** Sessions one token may hold open; past it the least recently used is closed. */
const MAX_SESSIONS_PER_TOKEN = 64;
/** `last used` of a token is written at most this often. */
const TOKEN_USE_WRITE_INTERVAL_MS = 60_000;

export class Gateway {
  readonly supervisor: Supervisor;
  readonly catalog: Catalog;
  private readonly aggregator: Aggregator;
  private readonly relay: Relay;
  private readonly sessions = new Map<string, ClientSession>();
  private readonly tokenUseWrittenAt = new Map<string, number>();
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
    const grant = await this.options.store.tokens.resolve(match[1]!);
    if (grant) this.noteTokenUse(grant.tokenId);
    return grant;
  }

  /** Serves one MCP HTTP request for an authenticated grant. */
  async handle(request: Request, grant: TokenGrant): Promise<Response> {
    const sessionId = request.headers.get("mcp-session-id");
    if (sessionId !== null) {
      const session = this.sessions.get(sessionId);
      // A session belongs to the token that opened it; to any other it does not exist.
      if (!session || session.grant.tokenId !== grant.tokenId) {
        return jsonRpcError(404, -32001, "Session not found: initialize a new session");
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
    });
    await session.start();
    const response = await session.handle(request);
    if (session.id === undefined) await session.close();
    return response;
  }

  /** The running backends, one sandbox each: for the authenticated control plane. */
  backendStatus(): { server: string; tenantId: string; pid: number; startedAt: number }[] {
    return this.supervisor.running().map((backend) => ({ server: backend.server.name, tenantId: backend.tenantId, pid: backend.pid, startedAt: backend.startedAt }));
  }

  /** Counts only: /healthz is unauthenticated, so it names no tenant, server or process. */
  health() {
    return { sessions: this.sessions.size, backends: this.supervisor.running().length };
  }

  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    this.catalog.stop();
    await Promise.all([...this.sessions.values()].map((session) => session.close()));
    await this.supervisor.close();
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

  private noteTokenUse(tokenId: string): void {
    const now = Date.now();
    if (now - (this.tokenUseWrittenAt.get(tokenId) ?? 0) < TOKEN_USE_WRITE_INTERVAL_MS) return;
    this.tokenUseWrittenAt.set(tokenId, now);
    void this.options.store.tokens.markUsed(tokenId, now).catch((error: unknown) => {
      this.options.log.warn("could not record token use", { error });
    });
  }
}

export function jsonRpcError(status: number, code: number, message: string): Response {
  return Response.json({ jsonrpc: "2.0", error: { code, message }, id: null }, { status });
}
