/**
 * Loopback HTTPS upstreams for egress proxy tests, behind a throwaway test CA
 * (the proxy is told to trust it), and clients that reach them through the
 * proxy: Bun's fetch with `proxy`, or a raw CONNECT + TLS socket when a test
 * needs to send exactly the bytes it chooses.
 */
import { createHash } from "node:crypto";
import { connect as connectTcp, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { join } from "node:path";
import { connect as connectTls, createServer as createTlsServer, type TLSSocket } from "node:tls";
import { readFileSync, writeFileSync } from "node:fs";
import { tempDir } from "./gateway.ts";

/** Names every test certificate covers; test resolvers map them to 127.0.0.1. */
export const TEST_HOSTS = ["api.test", "other.test", "sub.api.test", "close.test", "record.test", "oneshot.test"];

export interface TestPki {
  caPem: string;
  keyPem: string;
  certPem: string;
}

/** A test CA and one server certificate (signed by it) for every name in TEST_HOSTS. */
export function createTestPki(): TestPki {
  const dir = tempDir("gigmcp-upstream-pki-");
  const file = (name: string) => join(dir, name);
  const run = (args: string[]) => {
    const result = Bun.spawnSync(["openssl", ...args], { cwd: dir });
    if (result.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr.toString()}`);
  };
  const ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  run(["req", "-x509", ...ecKey, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Gig'MCP test upstream CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
  run(["req", ...ecKey, "-keyout", "server.key", "-out", "server.csr", "-subj", `/CN=${TEST_HOSTS[0]}`]);
  writeFileSync(file("ext.cnf"), `subjectAltName=${TEST_HOSTS.map((host) => `DNS:${host}`).join(",")}\nextendedKeyUsage=serverAuth\n`);
  run(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf"]);
  return { caPem: readFileSync(file("ca.pem"), "utf8"), keyPem: readFileSync(file("server.key"), "utf8"), certPem: readFileSync(file("server.pem"), "utf8") };
}

export interface RecordedRequest {
  method: string;
  /** Path and query as received. */
  url: string;
  headers: Record<string, string>;
  bodyBytes: number;
  bodySha256: string;
  /** Source port of the connection the request came on: equal ports mean a reused connection. */
  remotePort: number;
}

export interface TestUpstream {
  port: number;
  requests: RecordedRequest[];
  /** Bytes of the latest /bytes body handed to the server so far. */
  produced: Progress;
  /** Bytes of the latest request body read so far. */
  consumed: Progress;
  /** Lets the /sse stream send its remaining events. */
  releaseSse(): void;
  stop(): Promise<void>;
}

export interface Progress {
  bytes: number;
}

/**
 * An HTTPS server on 127.0.0.1. Routes:
 * - /bytes?n=N[&chunked] streams N bytes (Content-Length unless `chunked`);
 * - /sse sends one event, then waits for releaseSse() before two more;
 * - anything else answers JSON describing the request. The body is hashed as
 *   it streams; with ?pause=MS reading stops that long after the first MiB.
 */
export function startHttpsUpstream(pki: TestPki): TestUpstream {
  const requests: RecordedRequest[] = [];
  let releaseSse = () => {};
  const upstream = { produced: { bytes: 0 }, consumed: { bytes: 0 } };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { key: pki.keyPem, cert: pki.certPem },
    idleTimeout: 30,
    async fetch(request, server) {
      const url = new URL(request.url);
      const hash = createHash("sha256");
      const consumed = (upstream.consumed = { bytes: 0 });
      let pauseMs = Number(url.searchParams.get("pause") ?? 0);
      if (request.body) {
        for await (const chunk of request.body) {
          hash.update(chunk);
          consumed.bytes += chunk.length;
          if (pauseMs > 0 && consumed.bytes >= 1024 * 1024) {
            await Bun.sleep(pauseMs);
            pauseMs = 0;
          }
        }
      }
      const recorded: RecordedRequest = {
        method: request.method,
        url: url.pathname + url.search,
        headers: Object.fromEntries(request.headers),
        bodyBytes: consumed.bytes,
        bodySha256: hash.digest("hex"),
        remotePort: server.requestIP(request)?.port ?? 0,
      };
      requests.push(recorded);
      if (url.pathname === "/bytes") {
        const total = Number(url.searchParams.get("n"));
        const headers: Record<string, string> = { "content-type": "application/octet-stream" };
        if (!url.searchParams.has("chunked")) headers["content-length"] = String(total);
        return new Response(patternStream(total, (upstream.produced = { bytes: 0 })), { headers });
      }
      if (url.pathname === "/sse") {
        const gate = new Promise<void>((resolve) => (releaseSse = resolve));
        const encoder = new TextEncoder();
        const body = new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(encoder.encode("data: first\n\n"));
            await gate;
            controller.enqueue(encoder.encode("data: second\n\n"));
            controller.enqueue(encoder.encode("data: third\n\n"));
            controller.close();
          },
        });
        return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
      }
      if (url.pathname === "/reflect-chunked") {
        // Echoes the Authorization value as a chunked body, split in the middle of the value.
        const value = request.headers.get("authorization") ?? "";
        const half = Math.floor(value.length / 2);
        const encoder = new TextEncoder();
        const body = new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(encoder.encode(`{"seen":"${value.slice(0, half)}`));
            await Bun.sleep(20);
            controller.enqueue(encoder.encode(`${value.slice(half)}"}`));
            controller.close();
          },
        });
        return new Response(body, { headers: { "content-type": "application/json" } });
      }
      if (url.pathname === "/gzip") {
        // Compresses whatever the client accepts: an API that ignores Accept-Encoding: identity.
        return new Response(Bun.gzipSync(JSON.stringify({ ok: true })), { headers: { "content-type": "application/json", "content-encoding": "gzip" } });
      }
      // What the upstream saw, without echoing header values (which may hold an injected credential).
      if (url.pathname === "/quiet") return Response.json({ url: recorded.url, remotePort: recorded.remotePort, bodyBytes: recorded.bodyBytes, bodySha256: recorded.bodySha256 });
      return Response.json(recorded);
    },
  });
  return {
    port: server.port!,
    requests,
    get produced() {
      return upstream.produced;
    },
    get consumed() {
      return upstream.consumed;
    },
    releaseSse: () => releaseSse(),
    stop: () => server.stop(true),
  };
}

/** `total` bytes of a repeating pattern, produced as they are read (never held whole); `progress` counts them. */
export function patternStream(total: number, progress: Progress = { bytes: 0 }, pieceSize = 64 * 1024): ReadableStream<Uint8Array> {
  const piece = new Uint8Array(pieceSize).map((_, index) => 97 + (index % 26));
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (progress.bytes >= total) return controller.close();
      const size = Math.min(pieceSize, total - progress.bytes);
      progress.bytes += size;
      controller.enqueue(piece.slice(0, size));
    },
  });
}

export interface RawUpstream {
  port: number;
  /** Every byte received on each connection, in order of connection. */
  received: Buffer[];
  stop(): Promise<void>;
}

/**
 * A TLS server that hands each connection's first bytes to `respond`, for
 * responses Bun.serve cannot produce (close-delimited bodies) and for
 * checking exactly which bytes the proxy sent.
 */
export async function startRawUpstream(pki: TestPki, respond: (socket: TLSSocket, firstBytes: Buffer) => void): Promise<RawUpstream> {
  const received: Buffer[] = [];
  const server = createTlsServer({ key: pki.keyPem, cert: pki.certPem }, (socket) => {
    const index = received.push(Buffer.alloc(0)) - 1;
    let answered = false;
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      received[index] = Buffer.concat([received[index]!, chunk]);
      if (!answered && received[index]!.includes("\r\n\r\n")) {
        answered = true;
        respond(socket, received[index]!);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    received,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** fetch() through the proxy, trusting the proxy's runtime CA. */
export function proxiedFetch(proxyPort: number, runtimeCaPem: string) {
  return (url: string, init: RequestInit = {}) =>
    fetch(url, { ...init, proxy: `http://127.0.0.1:${proxyPort}`, tls: { ca: [runtimeCaPem] } } as RequestInit);
}

export interface ProxyAnswer {
  status: number;
  /** The whole answer (head and body) when the CONNECT was refused. */
  text: string;
  socket: Socket;
}

/** Sends `CONNECT authority` and reads the proxy's answer head (and body, if refused: the proxy then closes). */
export async function sendConnect(proxyPort: number, authority: string, options: { localAddress?: string; request?: string } = {}): Promise<ProxyAnswer> {
  const socket = connectTcp({ host: "127.0.0.1", port: proxyPort, ...(options.localAddress && { localAddress: options.localAddress }) });
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.write(options.request ?? `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  let received = Buffer.alloc(0);
  const status = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf("\r\n\r\n");
      if (end < 0) return;
      const code = Number(/^HTTP\/1\.1 (\d{3})/.exec(received.toString("latin1"))?.[1]);
      if (code === 200) {
        socket.off("data", onData);
        resolve(code);
      }
    };
    socket.on("data", onData);
    socket.once("close", () => {
      const code = Number(/^HTTP\/1\.1 (\d{3})/.exec(received.toString("latin1"))?.[1]);
      if (code) resolve(code);
      else reject(new Error(`the proxy closed without answering: ${JSON.stringify(received.toString("latin1"))}`));
    });
  });
  return { status, text: received.toString("utf8"), socket };
}

/** Opens a tunnel and starts TLS in it with the given SNI; resolves with the TLS socket, or rejects if the handshake fails. */
export async function openTunnel(proxyPort: number, authority: string, options: { servername: string; ca: string; localAddress?: string }): Promise<TLSSocket> {
  const answer = await sendConnect(proxyPort, authority, options);
  if (answer.status !== 200) throw new Error(`CONNECT ${authority} refused: ${answer.text}`);
  const tls = connectTls({ socket: answer.socket, servername: options.servername, ca: [options.ca], checkServerIdentity: () => undefined });
  tls.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    tls.once("secureConnect", resolve);
    tls.once("error", reject);
    tls.once("close", () => reject(new Error("the tunnel closed during the TLS handshake")));
  });
  return tls;
}

/**
 * Like openTunnel, but the way some clients pipeline: the TLS ClientHello
 * leaves in the same write as the CONNECT, before the proxy's 200.
 */
export async function openTunnelEagerly(proxyPort: number, authority: string, options: { servername: string; ca: string }): Promise<TLSSocket> {
  const socket = connectTcp({ host: "127.0.0.1", port: proxyPort });
  socket.on("error", () => {});
  await new Promise((resolve) => socket.once("connect", resolve));
  let connectSent = false;
  /** The proxy's answer while it is still coming in; undefined once it has been taken off. */
  let answer: Buffer | undefined = Buffer.alloc(0);
  // Carries the TLS client's bytes: the first write goes out behind the CONNECT; the proxy's 200 is taken off what comes back.
  const carrier = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      socket.write(connectSent ? chunk : Buffer.concat([Buffer.from(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`), chunk]), callback);
      connectSent = true;
    },
  });
  socket.on("data", (chunk: Buffer) => {
    if (answer === undefined) return void carrier.push(chunk);
    answer = Buffer.concat([answer, chunk]);
    const end = answer.indexOf("\r\n\r\n");
    if (end < 0) return;
    if (!answer.toString("latin1", 0, end).startsWith("HTTP/1.1 200")) return void carrier.destroy(new Error(answer.toString()));
    const rest = answer.subarray(end + 4);
    answer = undefined;
    if (rest.length > 0) carrier.push(rest);
  });
  socket.on("close", () => carrier.push(null));
  const tls = connectTls({ socket: carrier as unknown as Socket, servername: options.servername, ca: [options.ca] });
  tls.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    tls.once("secureConnect", resolve);
    tls.once("error", reject);
  });
  return tls;
}

export interface RawResponse {
  status: number;
  head: string;
  body: string;
}

/**
 * Writes `parts` (with `pauseMs` between them, so they arrive as separate
 * reads) and reads one response: Content-Length bodies exactly, anything else
 * until the connection closes.
 */
export async function rawExchange(socket: TLSSocket, parts: (string | Buffer)[], pauseMs = 30): Promise<RawResponse> {
  let received = Buffer.alloc(0);
  let closed = socket.destroyed;
  let onData = (_chunk: Buffer) => {};
  let onClose = () => {};
  const wait = new Promise<void>((resolve) => {
    const check = () => {
      const end = received.indexOf("\r\n\r\n");
      if (end >= 0) {
        const length = /\r\ncontent-length: *(\d+)/i.exec(received.toString("latin1", 0, end));
        if (length && received.length >= end + 4 + Number(length[1])) return resolve();
      }
      if (closed) resolve();
    };
    onData = (chunk) => {
      received = Buffer.concat([received, chunk]);
      check();
    };
    onClose = () => {
      closed = true;
      check();
    };
    socket.on("data", onData);
    socket.on("close", onClose);
    check();
  });
  for (const [index, part] of parts.entries()) {
    if (index > 0) await Bun.sleep(pauseMs);
    if (!socket.destroyed) socket.write(part);
  }
  await wait;
  socket.off("data", onData);
  socket.off("close", onClose);
  const text = received.toString("utf8");
  const end = text.indexOf("\r\n\r\n");
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), head: end < 0 ? text : text.slice(0, end), body: end < 0 ? "" : text.slice(end + 4) };
}
