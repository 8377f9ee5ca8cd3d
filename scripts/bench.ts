/**
 * Benchmarks, measured side by side in one run and printed as ratios (never
 * pass/fail). Run with `make bench`.
 *
 * egress proxy: see bench-proxy.ts (loopback only).
 * the SDK floor, gigmcp and the peer gateways (supergateway, mcp-proxy) serving the
 * same server, written to bench/RESULTS.md: see bench-peers.ts.
 * sandbox (root only, in a network namespace of its own): see bench-sandbox.ts.
 *
 * gateway-overhead: a warm tools/call of the bundled echo server through the
 * gateway (SDK client → streamable HTTP → gateway → stdio backend) against
 * the same call made directly over stdio by an SDK client.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config/index.ts";
import { startGateway } from "../src/gateway/index.ts";
import { createLogger } from "../src/log/index.ts";
import { openStore } from "../src/store/index.ts";
import { createPlainRunner } from "../src/sandbox/index.ts";

const WARMUP = 200;
const CALLS = 2000;
const MAIN = join(import.meta.dir, "../src/main.ts");

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Measurement {
  p50: number;
  p99: number;
  perSecond: number;
}

/** Sequential warm calls; latency percentiles in ms and calls per second. */
async function measure(client: Client): Promise<Measurement> {
  const call = () => client.callTool({ name: client === direct ? "echo" : "echo_echo", arguments: { message: "ping" } });
  for (let i = 0; i < WARMUP; i++) await call();
  const times: number[] = [];
  const started = performance.now();
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    await call();
    times.push(performance.now() - t0);
  }
  const elapsed = performance.now() - started;
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99), perSecond: (CALLS / elapsed) * 1000 };
}

const dataDir = mkdtempSync(join(tmpdir(), "gigmcp-bench-"));
// The bench measures overhead, not the rate limits.
const config = loadConfig({ GIG_DATA_DIR: dataDir, GIG_LISTEN: "127.0.0.1:0", GIG_SANDBOX: "off", GIG_LOG_LEVEL: "error", GIG_RATE_LIMIT: "1000000", GIG_RATE_LIMIT_IP: "1000000" });
const store = await openStore(config.dbUrl);
const admin = await store.users.create({ email: "bench@localhost", role: "admin" });
await store.servers.create({ name: "echo", kind: "builtin", command: "echo", args: [], env: {}, egress: [], roPaths: [], tier: "sealed", timeoutMs: null, limits: null, credentials: [] });
const profile = await store.profiles.create(admin.id, "bench", { prefixTools: true });
await store.profiles.addServer(profile.id, "echo", null);
const { token } = await store.tokens.create(profile.id, "bench");
const running = await startGateway({
  config,
  store,
  runner: createPlainRunner(),
  log: createLogger("error"),
  version: "bench",
  selfCommand: [process.execPath, MAIN],
});

const direct = new Client({ name: "bench", version: "1" });
await direct.connect(new StdioClientTransport({ command: process.execPath, args: [MAIN, "mcp", "echo"], stderr: "ignore" }));
const viaGateway = new Client({ name: "bench", version: "1" });
await viaGateway.connect(
  new StreamableHTTPClientTransport(new URL(`${running.url}/mcp/p/bench`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }),
);

const baseline = await measure(direct);
const gateway = await measure(viaGateway);

const row = (name: string, m: Measurement) =>
  `${name.padEnd(22)} p50 ${m.p50.toFixed(3).padStart(7)} ms  p99 ${m.p99.toFixed(3).padStart(7)} ms  ${m.perSecond.toFixed(0).padStart(6)} calls/s`;
console.log(`gateway-overhead: ${CALLS} sequential warm tools/call of echo (after ${WARMUP} warm-up calls)`);
console.log(row("direct stdio (SDK)", baseline));
console.log(row("through gigmcp", gateway));
console.log(`ratio p50 ${(gateway.p50 / baseline.p50).toFixed(2)}×, p99 ${(gateway.p99 / baseline.p99).toFixed(2)}×, throughput ${(gateway.perSecond / baseline.perSecond).toFixed(2)}×`);

await viaGateway.close();
await direct.close();
await running.stop();
store.close();
rmSync(dataDir, { recursive: true, force: true });

console.log("");
const proxyBench = Bun.spawn([process.execPath, join(import.meta.dir, "bench-proxy.ts")], { stdio: ["ignore", "inherit", "inherit"] });
process.exitCode = await proxyBench.exited;

console.log("");
const peersBench = Bun.spawn([process.execPath, join(import.meta.dir, "bench-peers.ts")], { stdio: ["ignore", "inherit", "inherit"] });
process.exitCode ||= await peersBench.exited;

if (process.getuid?.() === 0 && Bun.which("bwrap") && Bun.which("unshare")) {
  console.log("");
  const sandbox = Bun.spawn(["unshare", "--net", "--", process.execPath, join(import.meta.dir, "bench-sandbox.ts")], { stdio: ["ignore", "inherit", "inherit"] });
  process.exitCode ||= await sandbox.exited;
} else {
  console.log("\nsandbox benchmarks skipped: they need root, bubblewrap and unshare");
}
