/**
 * One connection to the egress proxy: the CONNECT and its checks, then the
 * TLS tunnel and its HTTP/1.1 requests, each checked for placeholders,
 * given its credentials and forwarded over one upstream connection.
 */
import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import { connect as connectTls, TLSSocket, type SecureContext } from "node:tls";
import { metrics } from "../metrics/index.ts";
import type { Network } from "./addresses.ts";
import { forbiddenReason } from "./addresses.ts";
import { isValidHostname, matchesEgress } from "./hosts.ts";
import {
  ClosedError,
  type Field,
  fieldValues,
  type Framing,
  type Peer,
  hasConnectionOption,
  Outbox,
  parseChunkSize,
  parseFieldLines,
  parseRequestHead,
  parseResponseHead,
  ProtocolError,
  proxyResponse,
  type RequestHead,
  responseFraming,
  requestFraming,
  StreamReader,
  TimeoutError,
} from "./http1.ts";
import type { LeafCache } from "./leaves.ts";
import { containsPlaceholder, exactNeedle, mayContainPlaceholder, PLACEHOLDER_NEEDLE, StreamScanner } from "./placeholders.ts";
import type { CredentialBinding, EgressAuditEvent, EgressIdentity, EgressPolicy, ProxyLimits, ProxyOptions } from "./index.ts";

/** What every tunnel shares. */
export interface ProxyContext {
  options: ProxyOptions;
  limits: ProxyLimits;
  allowAddresses: Network[];
  denylisted(host: string): string | undefined;
  leaves: LeafCache;
  upstreamTls: SecureContext;
  resolve(host: string): Promise<string[]>;
  tunnelsPerIdentity: Map<string, number>;
}

/** A placeholder where none may be: the request is refused. */
/** An injected credential came back in the response (an API that echoes requests): it must not reach the sandbox. */
class CredentialReflected extends Error {
  override name = "CredentialReflected";
}

class PlaceholderFound extends Error {
  override name = "PlaceholderFound";
}

/** Reads bodies and relays responses in pieces of at most this size. */
const PIECE = 64 * 1024;
const MAX_CHUNK_LINE = 4096;
const MAX_AUDIT_PATH = 2048;
/** How long a closing connection may take to send its last bytes. */
const LINGER_MS = 5000;

type Decision = EgressAuditEvent["decision"];

const NO_INJECTIONS: ReadonlyMap<number, CredentialBinding> = new Map();

/** A credential binding with what its header must look like, worked out once per tunnel. */
interface Injectable {
  binding: CredentialBinding;
  /** Header name in lower case. */
  key: string;
  /** The exact header value that asks for the credential: the format around the placeholder. */
  request: string;
}

/** How a body is copied through a scanner: by whom it is sent, what a find means, and the trailers' check. */
interface ScannedCopy {
  scanner: StreamScanner;
  from: Peer;
  found: () => Error;
  checkTrailers: (lines: string[]) => void;
}

interface Exchange {
  decision: Decision;
  reason: string;
  credentialId?: string;
  /** The credential values injected into the request: the response is scanned for them. */
  secrets: string[];
}

export class Tunnel {
  private readonly sourceIp: string;
  private readonly localIp: string;
  private identity: EgressIdentity | undefined;
  private host: string | undefined;
  private port: number | undefined;
  private identityKey: string | undefined;
  private injectables: Injectable[] = [];
  private client: TLSSocket | undefined;
  private clientReader: StreamReader;
  /** Set once the client's TLS is up; refusals before that are written to the raw socket. */
  private clientOut!: Outbox;
  private upstream: TLSSocket | undefined;
  private upstreamReader: StreamReader | undefined;
  private upstreamOut: Outbox | undefined;
  private upstreamAddress: string | undefined;
  private closed = false;

  constructor(private readonly raw: Socket, private readonly context: ProxyContext) {
    raw.on("error", () => {}); // Reported through the reader, or irrelevant once closed.
    this.sourceIp = plainAddress(raw.remoteAddress ?? "");
    this.localIp = plainAddress(raw.localAddress ?? "");
    this.clientReader = new StreamReader(raw, "client");
  }

  async run(): Promise<void> {
    try {
      if (await this.openTunnel()) {
        while (!this.closed) {
          const head = await this.readRequestHead();
          if (!head || !(await this.exchange(head))) break;
        }
      }
    } catch (error) {
      // Peers going away or going quiet are routine; anything else is a bug worth seeing.
      const routine = error instanceof ClosedError || error instanceof TimeoutError;
      this.context.options.log[routine ? "debug" : "error"]("egress tunnel failed", { host: this.host, sourceIp: this.sourceIp, error });
    } finally {
      if (this.identityKey) {
        const count = (this.context.tunnelsPerIdentity.get(this.identityKey) ?? 1) - 1;
        if (count > 0) this.context.tunnelsPerIdentity.set(this.identityKey, count);
        else this.context.tunnelsPerIdentity.delete(this.identityKey);
      }
      this.finish();
    }
  }

  /** Closes the connection and the upstream connection at once (listener stopping). */
  close(): void {
    this.closed = true;
    this.upstream?.destroy();
    this.client?.destroy();
    this.raw.destroy();
  }

  /** Ends both sides, letting queued bytes go out first. */
  private finish(): void {
    this.closed = true;
    this.upstream?.destroy();
    const socket = this.client ?? this.raw;
    socket.end();
    const linger = setTimeout(() => this.close(), LINGER_MS);
    linger.unref();
    socket.once("close", () => {
      clearTimeout(linger);
      this.close();
    });
  }

  private audit(decision: Decision, reason: string, fields: Partial<EgressAuditEvent> = {}): void {
    // Reasons are fixed phrases of this file (a few built from fixed lists), never hosts or paths: a bounded label.
    metrics.egressDecisions.inc({ decision, reason });
    const identity = this.identity;
    this.context.options.audit({
      time: Date.now(),
      decision,
      reason,
      sourceIp: this.sourceIp,
      ...(identity && { serverId: identity.serverId, serverName: identity.serverName, tenantId: identity.tenantId }),
      ...(this.host !== undefined && { host: this.host, port: this.port }),
      ...fields,
    });
  }

  // ---- CONNECT ------------------------------------------------------------

  /** Reads and checks the CONNECT, opens the upstream connection and the client's TLS; false if refused. */
  private async openTunnel(): Promise<boolean> {
    const { limits } = this.context;
    let head: Buffer | undefined;
    try {
      head = await this.clientReader.head(limits.maxHeadBytes, limits.headTimeoutMs, limits.headTimeoutMs);
    } catch (error) {
      if (error instanceof ProtocolError) return this.refuseConnect(error.status, "bad request", error.message);
      if (error instanceof TimeoutError) return this.refuseConnect(408, "bad request", "the CONNECT request was not complete in time");
      return false;
    }
    if (!head) return false;

    const lines = head.toString("latin1", 0, head.length - 4).split("\r\n");
    const requestLine = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0]!);
    if (!requestLine) return this.refuseConnect(400, "bad request", "malformed request line");
    if (requestLine[1] !== "CONNECT") {
      return this.refuseConnect(405, "not CONNECT", "this proxy only opens HTTPS tunnels (CONNECT host:443)", { method: requestLine[1]! }, ["Allow: CONNECT"]);
    }
    try {
      if (lines.some((line) => line.includes("\r") || line.includes("\n"))) throw new ProtocolError(400, "bare CR or LF");
      parseFieldLines(lines, 1);
    } catch {
      return this.refuseConnect(400, "bad request", "malformed CONNECT headers");
    }
    const authority = /^([^:[\]]+):(\d{1,5})$/.exec(requestLine[2]!);
    const port = Number(authority?.[2]);
    if (authority) {
      this.host = authority[1]!.toLowerCase();
      this.port = port;
    }

    this.identity = this.context.options.identify(this.sourceIp, this.localIp);
    if (!this.identity) return this.refuseConnect(403, "unknown source", "this address is not a known sandbox");
    const host = this.host;
    if (!authority || host === undefined || !isValidHostname(host) || port < 1 || port > 65535) {
      return this.refuseConnect(400, "invalid host", "CONNECT needs host:port with a DNS host name (not an IP address)");
    }
    const denied = this.context.denylisted(host);
    if (denied) return this.refuseConnect(403, "denylisted", `${host} is on the gateway's egress denylist (${denied})`);

    let policy: EgressPolicy;
    try {
      policy = await this.context.options.policy(this.identity);
    } catch (error) {
      this.context.options.log.error("egress policy unavailable", { serverId: this.identity.serverId, error });
      return this.refuseConnect(503, "policy unavailable", "the gateway could not read this server's egress policy; try again");
    }
    if (!matchesEgress(policy.egress, host, port)) {
      return this.refuseConnect(403, "not allowlisted", `${host}:${port} is not in this server's egress allowlist; an administrator can add it`);
    }
    this.injectables = policy.credentials
      .filter((binding) => binding.hosts === undefined || matchesEgress(binding.hosts, host, port))
      .map((binding) => ({ binding, key: binding.header.toLowerCase(), request: binding.format.replaceAll("{token}", () => binding.placeholder) }));

    const identityKey = `${this.identity.tenantId}\0${this.identity.serverId}`;
    const open = this.context.tunnelsPerIdentity.get(identityKey) ?? 0;
    if (open >= limits.maxTunnelsPerIdentity) {
      return this.refuseConnect(429, "too many tunnels", `at most ${limits.maxTunnelsPerIdentity} tunnels at once; reuse connections (keep-alive)`);
    }
    this.context.tunnelsPerIdentity.set(identityKey, open + 1);
    this.identityKey = identityKey;

    let addresses: string[];
    try {
      addresses = await withTimeout(this.context.resolve(host), limits.connectTimeoutMs, `resolving ${host} timed out`);
    } catch (error) {
      this.context.options.log.debug("egress host did not resolve", { host, error });
      return this.refuseConnect(502, "unresolvable host", `${host} does not resolve`);
    }
    if (addresses.length === 0) return this.refuseConnect(502, "unresolvable host", `${host} does not resolve`);
    for (const address of addresses) {
      const forbidden = forbiddenReason(address, this.context.allowAddresses);
      if (forbidden) return this.refuseConnect(403, `forbidden address ${forbidden}`, `${host} resolves to a ${forbidden} address, which sandboxes may not reach`);
    }

    const leaf = this.context.leaves.contextFor(host);
    leaf.catch(() => {}); // Awaited below; a rejection must not go unhandled meanwhile.
    const failure = await this.connectUpstream(addresses);
    if (failure) return this.refuseConnect(502, failure, `could not open a TLS connection to ${host}:${port}`);

    let secureContext: SecureContext;
    try {
      secureContext = await leaf;
    } catch (error) {
      this.context.options.log.error("could not mint a leaf certificate", { host, error });
      return this.refuseConnect(503, "certificate unavailable", "the proxy could not make a certificate for this host; try again");
    }
    return this.startClientTls(secureContext);
  }

  /** Answers the CONNECT with 200 and takes over the connection as a TLS server; false if the handshake fails. */
  private async startClientTls(secureContext: SecureContext): Promise<boolean> {
    this.raw.write("HTTP/1.1 200 Connection established\r\n\r\n");
    const early = this.clientReader.detach();
    // A client that sent its ClientHello without waiting for the 200 gets it read as if it had waited.
    const transport = early.length > 0 ? replaying(this.raw, early) : this.raw;
    const client = new TLSSocket(transport as Socket, { isServer: true, secureContext, ALPNProtocols: ["http/1.1"] } as ConstructorParameters<typeof TLSSocket>[1]);
    this.client = client;
    client.on("error", () => {});
    this.clientReader = new StreamReader(client, "client");
    this.clientOut = new Outbox(client, "client", this.context.limits.idleTimeoutMs);
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          client.once("secure", resolve);
          client.once("error", reject);
          client.once("close", () => reject(new ClosedError("closed during the TLS handshake", "client")));
        }),
        this.context.limits.headTimeoutMs,
        "the TLS handshake timed out",
      );
    } catch (error) {
      this.audit("deny", "TLS handshake failed");
      this.context.options.log.debug("egress tunnel TLS handshake failed", { host: this.host, error });
      return false;
    }
    // SNI must name the CONNECT host: the certificate and every later check are for that host.
    const servername = (client as TLSSocket & { servername?: string | false }).servername;
    if (servername !== this.host) {
      this.audit("deny", "SNI mismatch");
      return false;
    }
    return true;
  }

  /** Opens the upstream connection to the first address that answers; the failure reason, if none did. */
  private async connectUpstream(addresses: string[]): Promise<string | undefined> {
    let failure = "upstream unreachable";
    for (const address of addresses) {
      try {
        await this.openUpstream(address);
        this.upstreamAddress = address;
        return undefined;
      } catch (error) {
        failure = error instanceof UpstreamTlsError ? "upstream TLS failed" : "upstream unreachable";
        this.context.options.log.warn("egress upstream connection failed", { host: this.host, address, error });
      }
    }
    return failure;
  }

  private async openUpstream(address: string): Promise<void> {
    const { limits } = this.context;
    const socket = connectTls({
      host: address,
      port: this.port!,
      servername: this.host!,
      secureContext: this.context.upstreamTls,
      ALPNProtocols: ["http/1.1"],
      // Never relaxed by NODE_TLS_REJECT_UNAUTHORIZED.
      rejectUnauthorized: true,
    });
    socket.setNoDelay(true);
    let tcpConnected = false;
    socket.once("connect", () => (tcpConnected = true));
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          socket.once("secureConnect", resolve);
          socket.once("error", reject);
          socket.once("close", () => reject(new ClosedError("the upstream closed the connection", "upstream")));
        }),
        limits.connectTimeoutMs,
        "connecting to the upstream timed out",
      );
    } catch (error) {
      socket.destroy();
      throw tcpConnected ? new UpstreamTlsError((error as Error).message) : error;
    }
    socket.on("error", () => {});
    this.upstream = socket;
    this.upstreamReader = new StreamReader(socket, "upstream");
    this.upstreamOut = new Outbox(socket, "upstream", limits.idleTimeoutMs);
  }

  private upstreamIsOpen(): boolean {
    return this.upstream !== undefined && !this.upstream.destroyed && !this.upstreamReader!.finished;
  }

  /** Connects again to the address checked at CONNECT (no new DNS lookup) after the upstream closed. */
  private async reconnectUpstream(): Promise<void> {
    this.upstream?.destroy();
    await this.openUpstream(this.upstreamAddress!);
  }

  private refuseConnect(status: number, reason: string, message: string, fields: Partial<EgressAuditEvent> = {}, headers: string[] = []): false {
    this.audit("deny", reason, fields);
    this.raw.write(proxyResponse(status, message, headers));
    return false;
  }

  // ---- Requests inside the tunnel -----------------------------------------

  private async readRequestHead(): Promise<Buffer | undefined> {
    const { limits } = this.context;
    try {
      return await this.clientReader.head(limits.maxHeadBytes, limits.idleTimeoutMs, limits.headTimeoutMs);
    } catch (error) {
      if (error instanceof ProtocolError) await this.refuseRequest(error.status, "bad request", error.message, {});
      // An idle tunnel simply closes; a half-sent head gets a 408.
      else if (error instanceof TimeoutError && this.clientReader.buffered > 0) await this.refuseRequest(408, "bad request", "the request head was not complete in time", {});
      return undefined;
    }
  }

  /** One request and its response; true if the tunnel may carry another. */
  private async exchange(head: Buffer): Promise<boolean> {
    const started = performance.now();
    const text = head.toString("latin1");
    let request: RequestHead;
    try {
      request = parseRequestHead(text);
    } catch (error) {
      const status = error instanceof ProtocolError ? error.status : 400;
      return this.refuseRequest(status, "bad request", (error as Error).message, {});
    }
    const described: Partial<EgressAuditEvent> = { method: request.method, path: auditPath(request.target) };

    const hosts = fieldValues(request.fields, "host");
    if (hosts.length !== 1 || !this.isTunnelHost(hosts[0]!)) {
      return this.refuseRequest(421, "Host mismatch", `the Host header must name ${this.host}, the host this tunnel was opened for`, described);
    }
    if (fieldValues(request.fields, "upgrade").length > 0) {
      return this.refuseRequest(501, "upgrade not supported", "protocol upgrades (such as WebSocket) are not supported through the egress proxy", described);
    }
    let framing: Framing;
    try {
      framing = requestFraming(request.fields);
    } catch (error) {
      return this.refuseRequest((error as ProtocolError).status, "bad request", (error as Error).message, described);
    }

    const injections = mayContainPlaceholder(text) ? this.findInjections(request) : NO_INJECTIONS;
    if (injections === "exfiltration") {
      return this.refuseRequest(403, "placeholder exfiltration", "a credential placeholder may only be sent in its own header to an allowed host", described);
    }
    try {
      if (!this.upstreamIsOpen()) await this.reconnectUpstream();
    } catch (error) {
      this.context.options.log.warn("egress upstream reconnection failed", { host: this.host, error });
      return this.refuseRequest(502, "upstream unreachable", `could not reach ${this.host}`, described);
    }
    let fieldsOut: Field[] = injections.size > 0 ? request.fields.slice() : request.fields;
    const secrets: string[] = [];
    for (const [index, binding] of injections) {
      let secret: string;
      try {
        secret = await binding.secret();
      } catch (error) {
        this.context.options.log.warn("credential unavailable for injection", { credentialId: binding.credentialId, error });
        return this.refuseRequest(502, "credential unavailable", `credential ${binding.credentialId} is not available: an administrator must set it for this server`, { ...described, credentialId: binding.credentialId });
      }
      const value = binding.format.replaceAll("{token}", () => secret);
      // A secret with a line break would let it write headers of its own.
      if (!/^[\x20-\x7e\t]*$/.test(value)) {
        this.context.options.log.warn("credential has characters not allowed in a header", { credentialId: binding.credentialId });
        return this.refuseRequest(502, "credential unavailable", `credential ${binding.credentialId} cannot go in a header (control characters): an administrator must set it again`, { ...described, credentialId: binding.credentialId });
      }
      fieldsOut[index] = { ...fieldsOut[index]!, value };
      secrets.push(secret);
    }
    if (secrets.length > 0) {
      // The response is scanned for the credential, which only works on bytes as sent: no compression.
      fieldsOut = [...fieldsOut.filter((field) => field.key !== "accept-encoding"), { name: "Accept-Encoding", value: "identity", key: "accept-encoding" }];
    }
    const injected = [...injections.values()].map((binding) => binding.credentialId);
    const outcome: Exchange = injected.length > 0
      ? { decision: "inject", reason: "credential injected", credentialId: injected.join(","), secrets }
      : { decision: "allow", reason: "allowlisted", secrets };
    return this.forward(request, fieldsOut, framing, described, outcome, started);
  }

  private isTunnelHost(value: string): boolean {
    const given = value.toLowerCase();
    return given === `${this.host}:${this.port}` || (this.port === 443 && given === this.host);
  }

  /**
   * Fields to fill with a credential (by index), or "exfiltration" if a
   * placeholder appears anywhere else: the URL, another header, a header
   * whose value is not exactly the binding's format, a host the credential
   * is not for, or a placeholder no binding owns.
   */
  private findInjections(request: RequestHead): Map<number, CredentialBinding> | "exfiltration" {
    if (containsPlaceholder(request.target)) return "exfiltration";
    const injections = new Map<number, CredentialBinding>();
    for (const [index, field] of request.fields.entries()) {
      if (!containsPlaceholder(field.name) && !containsPlaceholder(field.value)) continue;
      const match = this.injectables.find((candidate) => candidate.key === field.key && candidate.request === field.value);
      if (!match) return "exfiltration";
      injections.set(index, match.binding);
    }
    return injections;
  }

  /** Sends the request upstream (body scanned as it streams) while relaying the response; true if the tunnel may go on. */
  private async forward(request: RequestHead, fieldsOut: Field[], framing: Framing, described: Partial<EgressAuditEvent>, outcome: Exchange, started: number): Promise<boolean> {
    const upstream = this.upstream!;
    const upstreamOut = this.upstreamOut!;
    const sentBefore = upstreamOut.written;
    let head = `${request.method} ${request.target} HTTP/1.1\r\n`;
    for (const field of fieldsOut) head += `${field.name}: ${field.value}\r\n`;
    head += "\r\n";
    let responseStarted = false;
    let uploadError: unknown;
    let uploadDone = false;

    const upload = (async () => {
      await upstreamOut.add(head);
      await this.forwardBody(framing, upstreamOut);
    })().then(
      () => {
        uploadDone = true;
      },
      (error: unknown) => {
        uploadError = error;
        // The upstream must not act on a partial body.
        upstream.destroy();
      },
    );
    let response: { status: number; bytes: number; keepAlive: boolean } | undefined;
    let responseError: unknown;
    try {
      response = await this.relayResponse(request.method, () => (responseStarted = true), outcome.secrets);
    } catch (error) {
      responseError = error;
    }
    if (!uploadDone && uploadError === undefined) {
      // The response came (or failed) before the whole body was sent: stop reading it.
      this.clientReader.cancel();
      upstream.destroy();
    }
    await upload;

    const measured: Partial<EgressAuditEvent> = {
      ...described,
      ...(outcome.credentialId !== undefined && { credentialId: outcome.credentialId }),
      bytesOut: upstreamOut.written - sentBefore,
      latencyMs: Math.round((performance.now() - started) * 10) / 10,
    };
    if (uploadError instanceof PlaceholderFound || uploadError instanceof ProtocolError) {
      const [reason, status, message] = uploadError instanceof PlaceholderFound
        ? ["placeholder exfiltration", 403, "a credential placeholder may only be sent in its own header to an allowed host"]
        : ["bad request", uploadError.status, uploadError.message];
      this.audit("deny", reason, { ...measured, ...(!responseStarted && { status }) });
      // Once part of a response went out, the client can only learn of it by the connection closing.
      if (responseStarted) this.client?.destroy();
      else await this.sendFinal(proxyResponse(status, message));
      return false;
    }
    if (responseError instanceof CredentialReflected) {
      this.audit("deny", "credential in the response", { ...measured, ...(!responseStarted && { status: 502 }) });
      // Cut off before any byte of the credential: the client sees the connection end, or a 502 if nothing went out yet.
      if (responseStarted) this.client?.destroy();
      else await this.sendFinal(proxyResponse(502, `${this.host} answered with the injected credential in its response, which never reaches the server`));
      return false;
    }
    if (response) {
      this.audit(outcome.decision, outcome.reason, { ...measured, status: response.status, bytesIn: response.bytes });
      return response.keepAlive && uploadDone && !hasConnectionOption(request.fields, "close");
    }
    const clientFailed = (uploadError as ClosedError | TimeoutError | undefined)?.peer === "client" && !this.clientReader.cancelled;
    if (clientFailed || (responseError as ClosedError | TimeoutError | undefined)?.peer === "client") {
      this.audit(outcome.decision, "client aborted", measured);
      return false;
    }
    const status = responseError instanceof TimeoutError ? 504 : 502;
    this.context.options.log.debug("egress upstream failed", { host: this.host, error: responseError ?? uploadError });
    this.audit(outcome.decision, "upstream failed", { ...measured, ...(!responseStarted && { status }) });
    if (responseStarted) this.client?.destroy();
    else await this.sendFinal(proxyResponse(status, `${this.host} did not answer properly`));
    return false;
  }

  /** Sends a request body upstream: scanned, held back around possible placeholders, chunked bodies re-framed. */
  private async forwardBody(framing: Framing, out: Outbox): Promise<void> {
    const reader = this.clientReader;
    // Gathered output leaves whenever the client makes us wait.
    reader.beforeWait = () => out.flush();
    try {
      await this.copyScanned(framing, reader, out, {
        scanner: new StreamScanner(PLACEHOLDER_NEEDLE),
        from: "client",
        found: () => new PlaceholderFound("a placeholder in the request body"),
        checkTrailers: (lines) => {
          if (lines.some((line) => containsPlaceholder(line))) throw new PlaceholderFound("a placeholder in a request trailer");
          parseFieldLines(lines);
        },
      });
      await out.flush();
    } finally {
      reader.beforeWait = undefined;
    }
  }

  /**
   * Copies a body through a scanner (both directions: placeholders out, credentials back): the same
   * bytes, chunked bodies re-framed around what the scanner holds back, trailers checked before
   * they are sent. Returns the bytes read.
   */
  private async copyScanned(framing: Framing, reader: StreamReader, out: Outbox, copy: ScannedCopy): Promise<number> {
    const idle = this.context.limits.idleTimeoutMs;
    const { scanner, from } = copy;
    const ended = from === "client" ? "the client closed before the end of the request body" : "the upstream closed in the middle of a response body";
    let bytes = 0;
    const scanned = (piece: Buffer): Buffer => {
      const safe = scanner.push(piece);
      if (!safe) throw copy.found();
      return safe;
    };
    const pieces = async (count: number, send: (data: Buffer) => Promise<void>) => {
      for (let remaining = count; remaining > 0; ) {
        const piece = await reader.some(Math.min(remaining, PIECE), idle);
        if (!piece) throw new ClosedError(ended, from);
        remaining -= piece.length;
        bytes += piece.length;
        await send(scanned(piece));
      }
    };
    if (framing.kind === "length") {
      await pieces(framing.length, (data) => out.add(data));
      await out.add(scanner.flush());
    } else if (framing.kind === "close") {
      for (let piece = await reader.some(PIECE, idle); piece; piece = await reader.some(PIECE, idle)) {
        bytes += piece.length;
        await out.add(scanned(piece));
      }
      await out.add(scanner.flush());
    } else if (framing.kind === "chunked") {
      const sendChunk = async (data: Buffer) => {
        if (data.length === 0) return;
        await out.add(`${data.length.toString(16)}\r\n`);
        await out.add(data);
        await out.add("\r\n");
      };
      for (;;) {
        const line = await reader.line(MAX_CHUNK_LINE, idle);
        bytes += line.length + 2;
        const size = parseChunkSize(line);
        if (size === 0) break;
        await pieces(size, sendChunk);
        const end = await reader.exactly(2, idle);
        if (end[0] !== 0x0d || end[1] !== 0x0a) throw new ProtocolError(from === "client" ? 400 : 502, "a chunk is not followed by CRLF");
        bytes += 2;
      }
      await sendChunk(scanner.flush());
      const trailers = await this.readTrailers(reader);
      copy.checkTrailers(trailers);
      const section = `0\r\n${trailers.map((line) => `${line}\r\n`).join("")}\r\n`;
      bytes += section.length - 3;
      await out.add(section);
    }
    return bytes;
  }

  private async readTrailers(reader: StreamReader): Promise<string[]> {
    const { maxHeadBytes, idleTimeoutMs } = this.context.limits;
    const lines: string[] = [];
    for (let total = 0; ; ) {
      const line = await reader.line(MAX_CHUNK_LINE, idleTimeoutMs);
      if (line === "") return lines;
      total += line.length + 2;
      if (total > maxHeadBytes) throw new ProtocolError(431, `trailers exceed ${maxHeadBytes} bytes`);
      lines.push(line);
    }
  }

  /**
   * Relays interim responses and the final response as they stream; the upstream is trusted to frame
   * them. With `secrets` (a credential was injected), neither head nor body may carry one back: the
   * body is scanned as it streams, re-framed when chunked so a secret split across chunks is seen.
   */
  private async relayResponse(method: string, onStart: () => void, secrets: string[]): Promise<{ status: number; bytes: number; keepAlive: boolean }> {
    const reader = this.upstreamReader!;
    const out = this.clientOut;
    const { maxHeadBytes, idleTimeoutMs } = this.context.limits;
    const needle = secrets.length > 0 ? exactNeedle(secrets) : undefined;
    reader.beforeWait = () => out.flush();
    try {
      let bytes = 0;
      for (;;) {
        const head = await reader.head(maxHeadBytes, idleTimeoutMs, idleTimeoutMs);
        if (!head) throw new ClosedError("the upstream closed the connection without answering", "upstream");
        const headText = head.toString("latin1");
        const response = parseResponseHead(headText);
        // A switch of protocols was never asked for (Upgrade is refused), so it cannot be relayed.
        if (response.status === 101) throw new ProtocolError(502, "the upstream switched protocols unasked");
        if (needle && (needle.foundIn(headText) || !isIdentityEncoded(headText))) throw new CredentialReflected("in the response head, or a body that cannot be scanned");
        onStart();
        await out.add(head);
        bytes += head.length;
        if (response.status < 200) continue;
        const framing = responseFraming(method, response);
        bytes += needle
          ? await this.copyScanned(framing, reader, out, {
              scanner: new StreamScanner(needle),
              from: "upstream",
              found: () => new CredentialReflected("in the response body"),
              checkTrailers: (lines) => {
                if (lines.some((line) => needle.foundIn(line))) throw new CredentialReflected("in a response trailer");
              },
            })
          : await this.relayBody(framing, reader, out);
        await out.flush();
        const keepAlive = framing.kind !== "close" && response.version === "1.1" && !hasConnectionOption(response.fields, "close");
        return { status: response.status, bytes, keepAlive };
      }
    } finally {
      reader.beforeWait = undefined;
    }
  }

  /** Copies a response body as framed (chunked bodies byte for byte, trailers included); returns its size. */
  private async relayBody(framing: Framing, reader: StreamReader, out: Outbox): Promise<number> {
    const idle = this.context.limits.idleTimeoutMs;
    let bytes = 0;
    const copy = async (count: number) => {
      for (let remaining = count; remaining > 0; ) {
        const piece = await reader.some(Math.min(remaining, PIECE), idle);
        if (!piece) throw new ClosedError("the upstream closed in the middle of a response body", "upstream");
        remaining -= piece.length;
        bytes += piece.length;
        await out.add(piece);
      }
    };
    if (framing.kind === "length") {
      await copy(framing.length);
    } else if (framing.kind === "close") {
      for (let piece = await reader.some(PIECE, idle); piece; piece = await reader.some(PIECE, idle)) {
        bytes += piece.length;
        await out.add(piece);
      }
    } else if (framing.kind === "chunked") {
      for (;;) {
        const line = await reader.line(MAX_CHUNK_LINE, idle);
        const size = parseChunkSize(line);
        bytes += line.length + 2;
        await out.add(`${line}\r\n`);
        if (size === 0) break;
        await copy(size + 2); // the data and its CRLF
      }
      const trailers = await this.readTrailers(reader);
      const section = `${trailers.map((line) => `${line}\r\n`).join("")}\r\n`;
      bytes += section.length;
      await out.add(section);
    }
    return bytes;
  }

  /** Refuses one request inside the tunnel (and ends the tunnel: what follows in the stream cannot be trusted). */
  private async refuseRequest(status: number, reason: string, message: string, described: Partial<EgressAuditEvent>): Promise<false> {
    this.audit("deny", reason, { ...described, status });
    await this.sendFinal(proxyResponse(status, message));
    return false;
  }

  private async sendFinal(response: string): Promise<void> {
    try {
      await this.clientOut.add(response);
      await this.clientOut.flush();
    } catch {
      // The client is gone; nothing to tell it.
    }
  }
}

/** `socket` as a stream that first yields `early` (bytes read before TLS began), for the TLS layer to read from the start. */
function replaying(socket: Socket, early: Buffer): Duplex {
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, _encoding, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(error, callback) {
      socket.destroy(error ?? undefined);
      callback(error);
    },
  });
  stream.push(early);
  socket.on("data", (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on("end", () => stream.push(null));
  socket.on("close", () => stream.destroy());
  return stream;
}

class UpstreamTlsError extends Error {
  override name = "UpstreamTlsError";
}

/** The request path for the audit log: query values dropped, names kept (/v1/x?key=&q=). */
export function auditPath(target: string): string {
  const query = target.indexOf("?");
  const path = query < 0
    ? target
    : `${target.slice(0, query)}?${target.slice(query + 1).split("&").map((pair) => {
      const equals = pair.indexOf("=");
      return equals < 0 ? pair : `${pair.slice(0, equals)}=`;
    }).join("&")}`;
  return path.length > MAX_AUDIT_PATH ? `${path.slice(0, MAX_AUDIT_PATH)}…` : path;
}

/** A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d. */
function plainAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Whether a response head declares no content coding (or only identity): a coded body cannot be scanned for secrets. */
function isIdentityEncoded(head: string): boolean {
  return [...head.matchAll(/^content-encoding:[ \t]*(.*?)[ \t]*$/gim)].every((match) => match[1]!.toLowerCase() === "identity");
}
