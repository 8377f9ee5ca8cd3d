/**
 * Egress proxy benchmark, side by side in one run on loopback (prints, never
 * asserts). The upstream HTTPS server and the proxy each run in a process of
 * their own, as in production (sandboxed client, gateway, remote API); this
 * process is the client.
 *
 * - keep-alive latency: sequential GETs on one connection, direct to the
 *   upstream vs through one proxy tunnel with a credential injected into
 *   every request (same minimal HTTP/1.1 client for both), then the same
 *   with Bun's fetch as the client; for scale, a bare TLS-terminating relay
 *   on the same sockets (no HTTP, no checks) shows what the extra hop
 *   alone costs;
 * - concurrency: 16 tunnels sending requests back to back;
 * - leaf certificates: minting for a new host vs a cache hit.
 *
 * Targets: proxied p50 ≤ 1.5× direct p50; ≥ 2,000 proxied requests/s on 2 cores.
 */
import { readFileSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { createServer, type AddressInfo } from "node:net";
import { connect as connectTls, createSecureContext, TLSSocket } from "node:tls";
import { createLogger } from "../src/log/index.ts";
import { createCertificateAuthority, createEgressProxy } from "../src/proxy/index.ts";
import { createLeafCache } from "../src/proxy/leaves.ts";
import { createTestPki, openTunnel, type TestPki } from "../tests/helpers/https-upstream.ts";

const WARMUP = 500;
const SEQUENTIAL = 5000;
const TUNNELS = 16;
const CONCURRENT_MS = 3000;
const LEAVES = 200;
const PLACEHOLDER = `gigph-${"0123456789abcdef".repeat(2)}`;

/** Child: the HTTPS upstream, answering every request with a small body. */
async function runUpstream(): Promise<void> {
  const pki = JSON.parse(readFileSync(process.argv[3]!, "utf8")) as TestPki;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { key: pki.keyPem, cert: pki.certPem },
    fetch: (request) => new Response(request.headers.get("authorization") === "Bearer bench-secret" ? "injected" : "plain"),
  });
  console.log(JSON.stringify({ port: server.port }));
}

/** Child: the egress proxy, trusting the upstream's test CA; prints its port and runtime CA. */
async function runProxy(): Promise<void> {
  const { caPem } = JSON.parse(readFileSync(process.argv[3]!, "utf8")) as TestPki;
  const { authority } = await createCertificateAuthority();
  const proxy = createEgressProxy({
    identify: () => ({ serverId: "bench", serverName: "bench", tenantId: "bench" }),
    policy: async () => ({
      egress: [`api.test:${process.argv[4]}`],
      credentials: [{ credentialId: "bench", placeholder: PLACEHOLDER, header: "Authorization", format: "Bearer {token}", secret: async () => "bench-secret" }],
    }),
    ca: authority,
    denylist: [],
    allowAddresses: ["127.0.0.1"],
    resolve: async () => ["127.0.0.1"],
    upstreamCaCertificates: [caPem],
    audit: () => {},
    log: createLogger("error"),
  });
  const port = await proxy.listen("127.0.0.1", 0);
  console.log(JSON.stringify({ port, caPem: authority.certificatePem }));
}

/** Child: decrypts and re-encrypts bytes as they come, on the sockets the proxy uses, nothing else: the cost of the hop itself. */
async function runRelay(): Promise<void> {
  const pki = JSON.parse(readFileSync(process.argv[3]!, "utf8")) as TestPki;
  const upstreamPort = Number(process.argv[4]);
  const serverContext = createSecureContext({ key: pki.keyPem, cert: pki.certPem });
  const upstreamContext = createSecureContext({ ca: [pki.caPem] });
  const server = createServer({ noDelay: true }, (raw) => {
    const client = new TLSSocket(raw, { isServer: true, secureContext: serverContext } as ConstructorParameters<typeof TLSSocket>[1]);
    const upstream = connectTls({ host: "127.0.0.1", port: upstreamPort, servername: "api.test", secureContext: upstreamContext });
    upstream.setNoDelay(true);
    client.on("data", (chunk: Buffer) => upstream.write(chunk));
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    for (const socket of [client, upstream]) socket.on("error", () => {}).on("close", () => (client.destroy(), upstream.destroy()));
  });
  server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: (server.address() as AddressInfo).port })));
}

interface Child {
  info: Record<string, unknown>;
  kill(): void;
}

async function spawnRole(...args: string[]): Promise<Child> {
  const child = Bun.spawn([process.execPath, import.meta.path, ...args], { stdout: "pipe", stderr: "inherit" });
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`bench ${args[0]} exited before it was ready`);
    text += new TextDecoder().decode(value);
  }
  return { info: JSON.parse(text.slice(0, text.indexOf("\n"))), kill: () => child.kill() };
}

/** One HTTP/1.1 connection, one request at a time; resolves each response once its Content-Length body is in. */
class KeepAliveClient {
  private buffer: Buffer = Buffer.alloc(0);
  private pending: ((body: string) => void) | undefined;

  constructor(private readonly socket: TLSSocket, private readonly request: string) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(this.buffer.toString("latin1", 0, end))?.[1] ?? 0);
      if (this.buffer.length < end + 4 + length) return;
      const body = this.buffer.toString("latin1", end + 4, end + 4 + length);
      this.buffer = this.buffer.subarray(end + 4 + length);
      const resolve = this.pending;
      this.pending = undefined;
      resolve?.(body);
    });
  }

  send(): Promise<string> {
    return new Promise((resolve) => {
      this.pending = resolve;
      this.socket.write(this.request);
    });
  }
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

interface Latency {
  p50: number;
  p99: number;
  perSecond: number;
}

async function sequential(send: () => Promise<string>, expected: string): Promise<Latency> {
  for (let i = 0; i < WARMUP; i++) await send();
  const times: number[] = [];
  const started = performance.now();
  for (let i = 0; i < SEQUENTIAL; i++) {
    const t0 = performance.now();
    const body = await send();
    times.push(performance.now() - t0);
    if (body !== expected) throw new Error(`unexpected answer ${JSON.stringify(body)}`);
  }
  const elapsed = performance.now() - started;
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99), perSecond: (SEQUENTIAL / elapsed) * 1000 };
}

async function runBench(): Promise<void> {
  const pki = createTestPki();
  const pkiFile = `${process.env.TMPDIR ?? "/tmp"}/gigmcp-bench-proxy-${process.pid}.json`;
  await Bun.write(pkiFile, JSON.stringify(pki));
  const upstream = await spawnRole("upstream", pkiFile);
  const upstreamPort = upstream.info.port as number;
  const proxy = await spawnRole("proxy", pkiFile, String(upstreamPort));
  const relay = await spawnRole("relay", pkiFile, String(upstreamPort));
  const proxyPort = proxy.info.port as number;
  const runtimeCa = proxy.info.caPem as string;
  const authority = `api.test:${upstreamPort}`;
  try {
    const directSocket = connectTls({ host: "127.0.0.1", port: upstreamPort, servername: "api.test", ca: [pki.caPem] });
    await new Promise((resolve) => directSocket.once("secureConnect", resolve));
    directSocket.setNoDelay(true);
    const directClient = new KeepAliveClient(directSocket, `GET / HTTP/1.1\r\nHost: ${authority}\r\nAuthorization: Bearer bench-secret\r\n\r\n`);
    const direct = await sequential(() => directClient.send(), "injected");
    directSocket.destroy();

    const relaySocket = connectTls({ host: "127.0.0.1", port: relay.info.port as number, servername: "api.test", ca: [pki.caPem] });
    await new Promise((resolve) => relaySocket.once("secureConnect", resolve));
    relaySocket.setNoDelay(true);
    const relayClient = new KeepAliveClient(relaySocket, `GET / HTTP/1.1\r\nHost: ${authority}\r\nAuthorization: Bearer bench-secret\r\n\r\n`);
    const relayed = await sequential(() => relayClient.send(), "injected");
    relaySocket.destroy();

    const request = `GET / HTTP/1.1\r\nHost: ${authority}\r\nAuthorization: Bearer ${PLACEHOLDER}\r\n\r\n`;
    const tunnel = await openTunnel(proxyPort, authority, { servername: "api.test", ca: runtimeCa });
    tunnel.setNoDelay(true);
    const tunnelClient = new KeepAliveClient(tunnel, request);
    const proxied = await sequential(() => tunnelClient.send(), "injected");
    tunnel.destroy();

    // The same comparison with Bun's fetch as the client, as a sandboxed Bun server would make it.
    const fetchDirect = await sequential(
      async () => (await fetch(`https://127.0.0.1:${upstreamPort}/`, { headers: { Authorization: "Bearer bench-secret" }, tls: { ca: [pki.caPem], serverName: "api.test" } } as RequestInit)).text(),
      "injected",
    );
    const fetchProxied = await sequential(
      async () => (await fetch(`https://${authority}/`, { headers: { Authorization: `Bearer ${PLACEHOLDER}` }, proxy: `http://127.0.0.1:${proxyPort}`, tls: { ca: [runtimeCa] } } as RequestInit)).text(),
      "injected",
    );

    const clients = await Promise.all(
      Array.from({ length: TUNNELS }, async () => new KeepAliveClient(await openTunnel(proxyPort, authority, { servername: "api.test", ca: runtimeCa }), request)),
    );
    let completed = 0;
    const deadline = performance.now() + CONCURRENT_MS;
    const started = performance.now();
    await Promise.all(clients.map(async (client) => {
      while (performance.now() < deadline) {
        await client.send();
        completed++;
      }
    }));
    const concurrentPerSecond = (completed / (performance.now() - started)) * 1000;

    const tunnelTimes: number[] = [];
    for (let i = 0; i < 100; i++) {
      const t0 = performance.now();
      const socket = await openTunnel(proxyPort, authority, { servername: "api.test", ca: runtimeCa });
      tunnelTimes.push(performance.now() - t0);
      socket.destroy();
    }
    tunnelTimes.sort((a, b) => a - b);

    const { authority: ca } = await createCertificateAuthority();
    const cache = createLeafCache(ca, { capacity: LEAVES * 2, validityMs: 7 * 24 * 3600_000 });
    let t0 = performance.now();
    for (let i = 0; i < LEAVES; i++) await cache.contextFor(`host${i}.example.test`);
    const mintMs = (performance.now() - t0) / LEAVES;
    t0 = performance.now();
    for (let i = 0; i < LEAVES * 10; i++) await cache.contextFor(`host${i % LEAVES}.example.test`);
    const hitMs = (performance.now() - t0) / (LEAVES * 10);

    const ms = (value: number) => `${value.toFixed(3)} ms`;
    console.log(`egress proxy on loopback, ${availableParallelism()} CPUs, Bun ${Bun.version}`);
    console.log(`sequential keep-alive GET, ${SEQUENTIAL} requests:`);
    console.log(`  direct            p50 ${ms(direct.p50)}  p99 ${ms(direct.p99)}  ${direct.perSecond.toFixed(0)} req/s`);
    console.log(`  bare TLS relay    p50 ${ms(relayed.p50)}  p99 ${ms(relayed.p99)}  ${relayed.perSecond.toFixed(0)} req/s  (${(relayed.p50 / direct.p50).toFixed(2)}x: the hop alone)`);
    console.log(`  proxy + injection p50 ${ms(proxied.p50)}  p99 ${ms(proxied.p99)}  ${proxied.perSecond.toFixed(0)} req/s`);
    console.log(`  ratio p50 ${(proxied.p50 / direct.p50).toFixed(2)}x (target ≤ 1.5x)`);
    console.log(`sequential keep-alive GET with Bun fetch as the client:`);
    console.log(`  direct            p50 ${ms(fetchDirect.p50)}  p99 ${ms(fetchDirect.p99)}  ${fetchDirect.perSecond.toFixed(0)} req/s`);
    console.log(`  proxy + injection p50 ${ms(fetchProxied.p50)}  p99 ${ms(fetchProxied.p99)}  ${fetchProxied.perSecond.toFixed(0)} req/s`);
    console.log(`  ratio p50 ${(fetchProxied.p50 / fetchDirect.p50).toFixed(2)}x`);
    console.log(`concurrent: ${TUNNELS} tunnels, ${(CONCURRENT_MS / 1000).toFixed(0)} s: ${concurrentPerSecond.toFixed(0)} proxied req/s (target ≥ 2000)`);
    console.log(`new tunnel (CONNECT, checks, upstream TLS, client TLS): p50 ${ms(percentile(tunnelTimes, 50))}  p99 ${ms(percentile(tunnelTimes, 99))}`);
    console.log(`leaf certificate: mint ${ms(mintMs)}  cache hit ${ms(hitMs)}`);
  } finally {
    for (const child of [upstream, proxy, relay]) child.kill();
    rmSync(pkiFile, { force: true });
  }
  process.exit(0);
}

const role = process.argv[2];
if (role === "upstream") await runUpstream();
else if (role === "proxy") await runProxy();
else if (role === "relay") await runRelay();
else await runBench();
