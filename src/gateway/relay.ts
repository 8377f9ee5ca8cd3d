/**
 * Traffic a backend starts on its own: notifications and server→client
 * requests (sampling, elicitation, roots). A backend speaks stdio and is
 * shared by all sessions of its tenant, so its messages carry no session;
 * the relay attributes them to the session whose call is in flight on that
 * backend (the oldest, when several are), and otherwise to the sessions of
 * the tenant that use the server.
 */
import {
  ErrorCode,
  ResultSchema,
  type JSONRPCRequest,
  type LoggingMessageNotification,
  type Notification,
  type RequestId,
} from "@modelcontextprotocol/sdk/types.js";
import type { Logger } from "../log/index.ts";
import type { Backend, BackendHooks } from "../supervisor/index.ts";
import { explainClientError, RpcError } from "./errors.ts";
import type { ClientSession } from "./session.ts";

/** The client capability each server→client request needs. */
const CLIENT_CAPABILITY: Record<string, "sampling" | "elicitation" | "roots"> = {
  "sampling/createMessage": "sampling",
  "elicitation/create": "elicitation",
  "roots/list": "roots",
};

/** Server→client requests wait on a person (sampling, elicitation): allow them long. */
const CLIENT_REQUEST_TIMEOUT_MS = 30 * 60_000;

/**
 * One client request forwarded to a backend, with its own deadline: it
 * restarts on progress and stands still while the backend waits on the
 * client (a person answering an elicitation is not a slow backend).
 */
export class Call {
  private readonly controller = new AbortController();
  /** Aborted by the client's cancellation or the deadline. */
  readonly signal = this.controller.signal;
  private timer: Timer | undefined;
  private waitingOnClient = 0;
  private readonly onClientAbort: () => void;

  constructor(
    readonly session: ClientSession,
    readonly requestId: RequestId,
    readonly backend: Backend,
    private readonly timeoutMs: number,
    private readonly clientSignal: AbortSignal,
  ) {
    // Not AbortSignal.any: Bun keeps a combined signal, and every listener on it, alive while its
    // sources live, which kept each finished call's request and closures in memory. A listener
    // removed in end() leaves nothing behind.
    this.onClientAbort = () => this.controller.abort(clientSignal.reason);
    if (clientSignal.aborted) this.onClientAbort();
    else clientSignal.addEventListener("abort", this.onClientAbort, { once: true });
    this.arm();
  }

  /** Progress from the backend: the deadline starts over. */
  touch(): void {
    if (this.waitingOnClient === 0) this.arm();
  }

  pause(): () => void {
    this.waitingOnClient++;
    clearTimeout(this.timer);
    return () => {
      this.waitingOnClient--;
      if (this.waitingOnClient === 0) this.arm();
    };
  }

  end(): void {
    clearTimeout(this.timer);
    this.clientSignal.removeEventListener("abort", this.onClientAbort);
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.controller.abort(
        new RpcError(ErrorCode.RequestTimeout, `Server ${this.backend.server.name} did not answer within ${this.timeoutMs / 1000}s`),
      );
    }, this.timeoutMs);
  }
}

export class Relay {
  private readonly calls = new Map<string, Call[]>();
  /** backend key → resource URI → subscribed sessions. */
  private readonly subscriptions = new Map<string, Map<string, Set<ClientSession>>>();

  constructor(
    private readonly sessions: () => Iterable<ClientSession>,
    private readonly log: Logger,
  ) {}

  begin(session: ClientSession, requestId: RequestId, backend: Backend, timeoutMs: number, clientSignal: AbortSignal): Call {
    const call = new Call(session, requestId, backend, timeoutMs, clientSignal);
    const calls = this.calls.get(backend.key) ?? [];
    calls.push(call);
    this.calls.set(backend.key, calls);
    return call;
  }

  end(call: Call): void {
    call.end();
    const calls = this.calls.get(call.backend.key)?.filter((other) => other !== call) ?? [];
    if (calls.length) this.calls.set(call.backend.key, calls);
    else this.calls.delete(call.backend.key);
  }

  /** Records a subscription; true when it is the backend's first for that URI. */
  subscribe(backend: Backend, session: ClientSession, uri: string): boolean {
    const byUri = this.subscriptions.get(backend.key) ?? new Map<string, Set<ClientSession>>();
    this.subscriptions.set(backend.key, byUri);
    const subscribers = byUri.get(uri) ?? new Set<ClientSession>();
    byUri.set(uri, subscribers);
    subscribers.add(session);
    return subscribers.size === 1;
  }

  /** Drops a subscription; true when no session of the backend wants that URI any more. */
  unsubscribe(backend: Backend, session: ClientSession, uri: string): boolean {
    const subscribers = this.subscriptions.get(backend.key)?.get(uri);
    if (!subscribers?.delete(session)) return false;
    if (subscribers.size === 0) this.subscriptions.get(backend.key)!.delete(uri);
    return subscribers.size === 0;
  }

  readonly hooks: BackendHooks = {
    notification: (backend, notification) => this.onNotification(backend, notification),
    request: (backend, request, signal) => this.onRequest(backend, request, signal),
    closed: (backend) => {
      // Subscriptions lived in the backend's session; they end with it.
      this.subscriptions.delete(backend.key);
    },
  };

  private onNotification(backend: Backend, notification: Notification): void {
    if (backend.invalidate(notification.method)) {
      for (const session of this.audience(backend)) session.notifyListChanged(notification.method);
      return;
    }
    switch (notification.method) {
      case "notifications/message": {
        const call = this.oldestCall(backend);
        const params = notification.params as LoggingMessageNotification["params"];
        if (call) void call.session.sendLog(params, call.requestId);
        else for (const session of this.audience(backend)) void session.sendLog(params);
        return;
      }
      case "notifications/resources/updated": {
        const uri = (notification.params as { uri?: unknown } | undefined)?.uri;
        const subscribers = typeof uri === "string" ? this.subscriptions.get(backend.key)?.get(uri) : undefined;
        for (const session of subscribers ?? []) void session.notify(notification);
        return;
      }
      default:
        this.log.debug("dropped backend notification", { server: backend.server.name, method: notification.method });
    }
  }

  private async onRequest(backend: Backend, request: JSONRPCRequest, signal: AbortSignal) {
    const call = this.oldestCall(backend);
    const session = call?.session ?? this.mostRecent(this.audience(backend));
    if (!session) {
      throw new RpcError(ErrorCode.InvalidRequest, `No client session of this tenant is connected to answer ${request.method}`);
    }
    const capability = CLIENT_CAPABILITY[request.method];
    if (capability && session.server.getClientCapabilities()?.[capability] === undefined) {
      throw new RpcError(ErrorCode.InvalidRequest, `The client of this session does not support ${request.method}`);
    }
    const resume = call?.pause();
    try {
      return await session.server.request({ method: request.method, params: request.params }, ResultSchema, {
        signal,
        timeout: CLIENT_REQUEST_TIMEOUT_MS,
        ...(call && { relatedRequestId: call.requestId }),
      });
    } catch (error) {
      throw explainClientError(error);
    } finally {
      resume?.();
    }
  }

  private oldestCall(backend: Backend): Call | undefined {
    return this.calls.get(backend.key)?.[0];
  }

  /** Open sessions of the backend's tenant whose profile includes its server. */
  private *audience(backend: Backend): Iterable<ClientSession> {
    for (const session of this.sessions()) {
      if (session.tenantId === backend.tenantId && session.uses(backend.server.id)) yield session;
    }
  }

  private mostRecent(sessions: Iterable<ClientSession>): ClientSession | undefined {
    let latest: ClientSession | undefined;
    for (const session of sessions) if (!latest || session.lastActivityAt > latest.lastActivityAt) latest = session;
    return latest;
  }
}
