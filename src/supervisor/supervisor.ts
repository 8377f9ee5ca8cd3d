/**
 * Backend lifecycle: one backend per (server × tenant), started lazily on
 * first use, stopped after the idle timeout, restarted with backoff after a
 * crash, and stopped when its server's definition changes.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { JSONRPCRequest, Notification, Result } from "@modelcontextprotocol/sdk/types.js";
import { currentRequest, outsideRequest, type Logger, type RequestScope } from "../log/index.ts";
import { metrics } from "../metrics/index.ts";
import { startSpan, TRACE_ATTR } from "../tracing/index.ts";
import type { Server } from "../store/index.ts";
import { Backend } from "./backend.ts";
import { ProcessTransport } from "./process-transport.ts";
import type { LaunchSpec, Runner } from "../sandbox/index.ts";

/** How the gateway hears what backends send on their own. */
export interface BackendHooks {
  notification(backend: Backend, notification: Notification): void;
  /** A server→client request (sampling, elicitation, roots); the answer goes back to the backend. */
  request(backend: Backend, request: JSONRPCRequest, signal: AbortSignal): Promise<Result>;
  /** The backend is gone (crash, idle, reconfiguration or shutdown). */
  closed(backend: Backend): void;
}

export interface SupervisorOptions {
  runner: Runner;
  hooks: BackendHooks;
  log: Logger;
  idleTimeoutMs: number;
  callTimeoutMs: number;
  /** argv prefix that runs this gigmcp executable (for builtin servers). */
  selfCommand: string[];
  version: string;
  /**
   * Variables that carry a backend's credentials: placeholders for sealed
   * servers, the secrets themselves for entrusted ones.
   */
  credentialEnvironment?(server: Server, tenantId: string): Promise<Record<string, string>>;
}

/** Default PATH given to backends; nothing else of the gateway's environment is passed on. */
const BACKEND_PATH = "/usr/local/bin:/usr/bin:/bin";
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 30_000;
/** A backend that stayed up this long is considered healthy again. */
const STABLE_AFTER_MS = 30_000;
const STDERR_LINE_LIMIT = 4096;
const STDERR_TAIL_LINES = 20;

interface CrashRecord {
  count: number;
  at: number;
}

export class Supervisor {
  private readonly backends = new Map<string, Backend>();
  private readonly starting = new Map<string, Promise<Backend>>();
  private readonly crashes = new Map<string, CrashRecord>();
  /** Keys whose last run crashed or failed to start: their next start is a restart. */
  private readonly restartDue = new Set<string>();
  /** Backends being stopped on purpose: their exit is not a crash. */
  private readonly stopping = new Set<Backend>();
  private readonly reaper: Timer;
  private closing = false;

  constructor(private readonly options: SupervisorOptions) {
    this.reaper = setInterval(() => this.reapIdle(), Math.min(options.idleTimeoutMs / 4, 30_000));
    this.reaper.unref();
  }

  static key(serverId: string, tenantId: string): string {
    return `${serverId}/${tenantId}`;
  }

  /** The running backend for (server, tenant), starting it if needed. */
  async acquire(server: Server, tenantId: string): Promise<Backend> {
    if (this.closing) throw new Error("gateway is shutting down");
    const key = Supervisor.key(server.id, tenantId);
    const running = this.backends.get(key);
    if (running && running.server.updatedAt === server.updatedAt) return running;
    if (running) await this.stop(running);
    let pending = this.starting.get(key);
    if (!pending) {
      // The backend outlives the request that starts it: its output and notifications belong to no request.
      const request = currentRequest();
      pending = outsideRequest(() => this.start(key, server, tenantId, request)).finally(() => this.starting.delete(key));
      this.starting.set(key, pending);
    }
    return pending;
  }

  running(): Backend[] {
    return [...this.backends.values()];
  }

  /** The backend of (server, tenant) if it is running; never starts one. */
  find(serverId: string, tenantId: string): Backend | undefined {
    return this.backends.get(Supervisor.key(serverId, tenantId));
  }

  /** Stops backends whose server no longer exists or has been redefined. */
  async reconcile(servers: Server[]): Promise<void> {
    const current = new Map(servers.map((server) => [server.id, server.updatedAt]));
    await Promise.all(
      this.running()
        .filter((backend) => current.get(backend.server.id) !== backend.server.updatedAt)
        .map((backend) => this.stop(backend)),
    );
  }

  async stop(backend: Backend): Promise<void> {
    this.stopping.add(backend);
    await backend.client.close();
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.reaper);
    await Promise.allSettled([...this.starting.values()]);
    await Promise.all(this.running().map((backend) => this.stop(backend)));
  }

  private async start(key: string, server: Server, tenantId: string, request: RequestScope | undefined): Promise<Backend> {
    await this.waitForBackoff(key);
    if (this.restartDue.delete(key)) metrics.sandboxRestarts.inc();
    const log = this.options.log.child({ server: server.name, tenant: tenantId });
    const spec = await this.launchSpec(server, tenantId);
    const spawning = metrics.sandboxSpawnDuration.startTimer();
    const span = startSpan("backend.spawn", { [TRACE_ATTR.server]: server.name, [TRACE_ATTR.sandbox]: this.options.runner.name }, request ? [request] : []);
    const process = await this.options.runner.start(spec);
    const stderrTail: string[] = [];
    void forwardStderr(process.stderr, log, stderrTail);

    const client = new Client(
      { name: "gigmcp", version: this.options.version },
      { capabilities: { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } } },
    );
    const backend = new Backend(key, server, tenantId, client, process, this.options.callTimeoutMs);
    client.fallbackNotificationHandler = async (notification) => this.options.hooks.notification(backend, notification);
    client.fallbackRequestHandler = (request, extra) => this.options.hooks.request(backend, request, extra.signal);
    client.onerror = (error) => log.warn("backend protocol error", { error });

    const transport = new ProcessTransport(process);
    try {
      await client.connect(transport, { timeout: server.timeoutMs ?? this.options.callTimeoutMs });
    } catch (error) {
      this.recordCrash(key);
      await transport.close();
      log.warn("backend failed to start", { error, exitCode: await process.exited, stderr: stderrTail.join("\n") });
      const failure = `server ${server.name} failed to start: ${error instanceof Error ? error.message : String(error)}`;
      span.end(failure);
      throw new Error(failure);
    }

    const spawnSeconds = spawning();
    span.end();
    client.onclose = () => this.onClosed(backend, log);
    this.backends.set(key, backend);
    metrics.sandboxesRunning.inc();
    log.info("backend started", { pid: process.pid, runner: this.options.runner.name, spawnMs: Math.round(spawnSeconds * 1000), ...(request && { requestId: request.requestId }) });
    return backend;
  }

  private onClosed(backend: Backend, log: Logger): void {
    if (this.backends.get(backend.key) === backend) this.backends.delete(backend.key);
    metrics.sandboxesRunning.dec();
    if (this.stopping.delete(backend)) {
      log.info("backend stopped");
    } else {
      const stableFor = Date.now() - backend.startedAt;
      if (stableFor >= STABLE_AFTER_MS) this.crashes.delete(backend.key);
      this.recordCrash(backend.key);
      log.warn("backend exited unexpectedly; it restarts on next use", { uptimeMs: stableFor });
    }
    this.options.hooks.closed(backend);
  }

  private recordCrash(key: string): void {
    const previous = this.crashes.get(key);
    this.crashes.set(key, { count: (previous?.count ?? 0) + 1, at: Date.now() });
    this.restartDue.add(key);
  }

  /** Consecutive crashes delay the next start: 0, 250 ms, 500 ms, 1 s, … up to 30 s. */
  private async waitForBackoff(key: string): Promise<void> {
    const crash = this.crashes.get(key);
    if (!crash || crash.count < 2) return;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (crash.count - 2));
    const remaining = crash.at + delay - Date.now();
    if (remaining > 0) await Bun.sleep(remaining);
  }

  private reapIdle(): void {
    const cutoff = Date.now() - this.options.idleTimeoutMs;
    for (const backend of this.running()) {
      if (!backend.busy && backend.lastUsedAt < cutoff) {
        this.options.log.info("stopping idle backend", { server: backend.server.name, tenant: backend.tenantId });
        metrics.sandboxIdleReaps.inc();
        void this.stop(backend);
      }
    }
  }

  private async launchSpec(server: Server, tenantId: string): Promise<LaunchSpec> {
    const argv = server.kind === "builtin" ? [...this.options.selfCommand, "mcp", server.command] : [server.command, ...server.args];
    const credentials = (await this.options.credentialEnvironment?.(server, tenantId)) ?? {};
    return { server, tenantId, argv, env: { PATH: BACKEND_PATH, ...server.env, ...credentials } };
  }
}

/** Logs a backend's stderr line by line (bounded), keeping the last lines for failure reports. */
async function forwardStderr(stream: ReadableStream<Uint8Array>, log: Logger, tail: string[]): Promise<void> {
  const emit = (line: string) => {
    log.debug("backend stderr", { line });
    tail.push(line);
    if (tail.length > STDERR_TAIL_LINES) tail.shift();
  };
  const decoder = new TextDecoder();
  let pending = "";
  try {
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = pending.indexOf("\n")) >= 0) {
        emit(pending.slice(0, Math.min(newline, STDERR_LINE_LIMIT)));
        pending = pending.slice(newline + 1);
      }
      if (pending.length > STDERR_LINE_LIMIT) pending = pending.slice(0, STDERR_LINE_LIMIT);
    }
  } catch {
    // The process is gone; nothing more to read.
  }
  if (pending) emit(pending);
}
