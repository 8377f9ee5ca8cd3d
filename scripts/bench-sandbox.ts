/**
 * Sandbox benchmarks, side by side in one run (never pass/fail). Needs root;
 * scripts/bench.ts runs it inside a network namespace of its own, as the
 * tests do, so the veths and firewall rules it creates never touch the host.
 *
 * - cold start: sandbox start to the first tools/list answer of a static
 *   server (the bundled echo of dist/gigmcp), against a bare
 *   `bwrap --unshare-all` start of the same server;
 * - concurrency: N sandboxes started together and all answering;
 * - memory: RSS per idle sandbox beyond the server process itself.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createBackends } from "../src/cli/runner.ts";
import { loadConfig } from "../src/config/index.ts";
import { createLogger } from "../src/log/index.ts";
import type { Runner, RunningProcess } from "../src/sandbox/index.ts";
import { openStore, type Server } from "../src/store/index.ts";
import { ProcessTransport } from "../src/supervisor/index.ts";

const GIGMCP = resolve(import.meta.dir, "../dist/gigmcp");
const COLD_STARTS = 30;
const CONCURRENT = Number(process.env.BENCH_SANDBOXES ?? 200);

if (!existsSync(GIGMCP)) throw new Error("run `make build` first");
Bun.spawnSync(["ip", "link", "set", "lo", "up"]);

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const ms = (value: number) => `${value.toFixed(1).padStart(6)} ms`;

const server: Server = {
  id: "bench", name: "bench", kind: "stdio", command: GIGMCP, args: ["mcp", "echo"], env: {}, egress: [], roPaths: [], tier: "sealed",
  timeoutMs: null, limits: null, credentials: [], createdAt: 0, updatedAt: 0,
};

async function firstListThroughSandbox(runner: Runner, tenantId: string): Promise<{ client: Client; process: RunningProcess }> {
  const process = await runner.start({ server, tenantId, argv: [GIGMCP, "mcp", "echo"], env: { PATH: "/usr/bin:/bin" } });
  const client = new Client({ name: "bench", version: "1" });
  await client.connect(new ProcessTransport(process));
  await client.listTools();
  return { client, process };
}

function bareBwrapArgs(): string[] {
  const args = ["--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"];
  for (const dir of ["/bin", "/sbin", "/lib", "/lib64"]) {
    if (!existsSync(dir)) continue;
    args.push(...(lstatSync(dir).isSymbolicLink() ? ["--symlink", readlinkSync(dir), dir] : ["--ro-bind", dir, dir]));
  }
  return [...args, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--ro-bind", GIGMCP, GIGMCP, "--", GIGMCP, "mcp", "echo"];
}

async function firstListThrough(command: string, args: string[]): Promise<Client> {
  const client = new Client({ name: "bench", version: "1" });
  await client.connect(new StdioClientTransport({ command, args, stderr: "ignore" }));
  await client.listTools();
  return client;
}

function rssKb(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const dataDir = mkdtempSync(join(tmpdir(), "gigmcp-bench-"));
const config = loadConfig({ GIG_DATA_DIR: dataDir, GIG_SANDBOX: "bwrap", GIG_SANDBOX_CGROUP: `gigmcp-bench-${process.pid}`, GIG_LOG_LEVEL: "error" });
const store = await openStore(config.dbUrl);
const { runner } = await createBackends({ config, store, log: createLogger("error"), selfCommand: [GIGMCP] });

// Cold start, interleaved so all three see the same machine state.
const sandboxed: number[] = [];
const bare: number[] = [];
const unsandboxed: number[] = [];
for (let i = 0; i < COLD_STARTS; i++) {
  let t0 = performance.now();
  const { client } = await firstListThroughSandbox(runner, "cold");
  sandboxed.push(performance.now() - t0);
  await client.close();
  t0 = performance.now();
  const inBareBwrap = await firstListThrough(Bun.which("bwrap")!, bareBwrapArgs());
  bare.push(performance.now() - t0);
  await inBareBwrap.close();
  t0 = performance.now();
  const plain = await firstListThrough(GIGMCP, ["mcp", "echo"]);
  unsandboxed.push(performance.now() - t0);
  await plain.close();
}
for (const series of [sandboxed, bare, unsandboxed]) series.sort((a, b) => a - b);
console.log(`sandbox cold start → first tools/list answer (${COLD_STARTS} each, static echo server of dist/gigmcp)`);
console.log(`no sandbox (server alone)  p50 ${ms(percentile(unsandboxed, 50))}  p95 ${ms(percentile(unsandboxed, 95))}`);
console.log(`bare bwrap --unshare-all   p50 ${ms(percentile(bare, 50))}  p95 ${ms(percentile(bare, 95))}`);
console.log(`gigmcp sandbox             p50 ${ms(percentile(sandboxed, 50))}  p95 ${ms(percentile(sandboxed, 95))}`);
console.log(`ratio p50 ${(percentile(sandboxed, 50) / percentile(bare, 50)).toFixed(2)}×, p95 ${(percentile(sandboxed, 95) / percentile(bare, 95)).toFixed(2)}×`);

// Concurrency: all started together, then all asked again while all are alive.
const t0 = performance.now();
const live = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => firstListThroughSandbox(runner, `tenant-${i}`)));
const startedIn = performance.now() - t0;
const answers = await Promise.all(live.map(({ client }) => client.callTool({ name: "echo", arguments: { message: "ping" } })));
const ok = answers.filter((answer) => JSON.stringify(answer).includes("ping")).length;
console.log(`\nconcurrent sandboxes: ${CONCURRENT} started together in ${(startedIn / 1000).toFixed(1)} s, ${ok}/${CONCURRENT} answering while all run`);

// Memory: the launcher has become bwrap; its child is bwrap's pid 1, whose child is the server.
let overheadKb = 0;
let serverKb = 0;
for (const { process } of live) {
  const reaper = childrenOf(process.pid)[0];
  const serverPid = reaper === undefined ? undefined : childrenOf(reaper)[0];
  overheadKb += rssKb(process.pid) + (reaper === undefined ? 0 : rssKb(reaper));
  serverKb += serverPid === undefined ? 0 : rssKb(serverPid);
}
console.log(`idle RSS per sandbox: ${(overheadKb / CONCURRENT / 1024).toFixed(1)} MB of sandbox processes (bwrap, its pid 1) beside ${(serverKb / CONCURRENT / 1024).toFixed(1)} MB of server`);

await Promise.all(live.map(({ client }) => client.close()));
await runner.close?.();
store.close();
rmSync(dataDir, { recursive: true, force: true });
