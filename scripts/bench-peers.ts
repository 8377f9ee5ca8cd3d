/**
 * gigmcp against the peer gateways a user would pick instead, measured one
 * after another in one run on loopback (prints, never asserts). Every gateway
 * exposes the same stdio server — the bundled echo of dist/gigmcp — over
 * streamable HTTP, and the client is always the SDK's Client with
 * StreamableHTTPClientTransport:
 *
 * - connect: a new client's connect + initialize + tools/list against a warm
 *   gateway, then its session is ended (median);
 * - sequential: warm tools/call p50/p99 and calls/s on one session;
 * - concurrent: 16 clients with a session each calling back to back;
 * - memory: RSS of the gateway's whole process tree with the 16 sessions open.
 *
 * Then facts each gateway shows on the spot (token, listening address, what
 * the server process inherits), so the table says what a peer does not do.
 *
 * The peers are pinned in scripts/peers (not dependencies of gigmcp) and run
 * on Node. mcp-hub is not among them: its client endpoint is the deprecated
 * HTTP+SSE transport (GET /mcp, POST /messages), not streamable HTTP.
 *
 * As root with bubblewrap, the script re-runs itself in a network namespace
 * of its own (as bench-sandbox.ts does) and adds gigmcp with its sandbox.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const GIGMCP = resolve(import.meta.dir, "../dist/gigmcp");
const PEERS = join(import.meta.dir, "peers");
const ROOT_NODE = resolve(import.meta.dir, "../node_modules/.bin/node");
const NODE = existsSync(ROOT_NODE) ? ROOT_NODE : (Bun.which("node") ?? "node");
const ECHO = [GIGMCP, "mcp", "echo"];
const CONNECTS = 20;
const WARMUP = 200;
const CALLS = 2000;
const CLIENTS = 16;
const CALLS_PER_CLIENT = 250;
const IN_NAMESPACE = "--in-own-netns";
// Set on every gateway, looked for in its server's environment.
const MARKER = "GIG_BENCH_MARKER";

interface Gateway {
  name: string;
  url: string;
  headers: Record<string, string>;
  pid: number;
  stop(): Promise<void>;
}

interface Result {
  name: string;
  connectMs: number;
  p50: number;
  p99: number;
  perSecond: number;
  concurrentPerSecond: number;
  concurrentNote: string;
  rssMb: number;
  processes: number;
  facts: string[];
}

if (!existsSync(GIGMCP)) throw new Error("dist/gigmcp is missing: run `make build` first");
const withSandbox = process.argv.includes(IN_NAMESPACE);
if (!withSandbox && !existsSync(join(PEERS, "node_modules/.bin/mcp-proxy"))) {
  const install = Bun.spawnSync(["npm", "ci", "--prefix", PEERS, "--no-audit", "--no-fund"], { stdio: ["ignore", "inherit", "inherit"] });
  if (install.exitCode !== 0) throw new Error("installing the peers failed: run `npm ci --prefix scripts/peers` and retry");
}
if (!withSandbox && process.getuid?.() === 0 && Bun.which("bwrap") && Bun.which("unshare")) {
  const again = Bun.spawn(["unshare", "--net", "--", process.execPath, import.meta.path, IN_NAMESPACE], { stdio: ["ignore", "inherit", "inherit"] });
  process.exit(await again.exited);
}
if (withSandbox) Bun.spawnSync(["ip", "link", "set", "lo", "up"]);

const workDir = mkdtempSync(join(tmpdir(), "gigmcp-bench-peers-"));
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

// ---- the process tree, from /proc ----

function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

function treeOf(pid: number): number[] {
  return [pid, ...childrenOf(pid).flatMap(treeOf)];
}

function rssKb(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

const procText = (pid: number, file: string) => readText(`/proc/${pid}/${file}`);

const uidOf = (pid: number) => /^Uid:\s+(\d+)/m.exec(procText(pid, "status"))?.[1];
const netnsOf = (pid: number) => {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
};

/** The echo server processes in a gateway's tree (not the shells or launchers around them). */
function serversIn(pid: number): number[] {
  return treeOf(pid).filter((candidate) => {
    const argv = procText(candidate, "cmdline").split("\0");
    return argv[0] === GIGMCP && argv[1] === "mcp" && argv[2] === "echo";
  });
}

/** The address a TCP port listens on, from /proc/net/tcp{,6}. */
function listeningAddress(port: number): string {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const table of ["tcp", "tcp6"]) {
    for (const line of readText(`/proc/net/${table}`).split("\n").slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state !== "0A" || !local?.endsWith(`:${hexPort}`)) continue;
      const address = local.split(":")[0]!;
      return /^0+$/.test(address) ? "all interfaces" : "loopback only";
    }
  }
  return "unknown";
}

// ---- the gateways ----

async function waitUntilServing(url: string, name: string, logFile: string, exited: Promise<number>): Promise<void> {
  const deadline = Date.now() + 30_000;
  let gone = false;
  void exited.then(() => (gone = true));
  while (Date.now() < deadline && !gone) {
    try {
      await fetch(url, { method: "GET", signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      await Bun.sleep(100);
    }
  }
  throw new Error(`${name} did not start; its output:\n${readText(logFile).slice(-2000)}`);
}

async function launch(name: string, argv: string[], env: Record<string, string>, url: string, headers: Record<string, string>): Promise<Gateway> {
  const logFile = join(workDir, `${name.replace(/\W+/g, "-")}.log`);
  const child = Bun.spawn(argv, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: workDir, [MARKER]: "1", ...env }, stdio: ["ignore", Bun.file(logFile), Bun.file(logFile)] });
  await waitUntilServing(url, name, logFile, child.exited);
  return {
    name,
    url,
    headers,
    pid: child.pid,
    async stop() {
      const tree = treeOf(child.pid);
      child.kill("SIGTERM");
      await Promise.race([child.exited, Bun.sleep(5000)]);
      // Servers a gateway leaves behind (detached process groups) are ours to end.
      for (const pid of tree) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    },
  };
}

function gigmcpCli(env: Record<string, string>, ...args: string[]): string {
  const run = Bun.spawnSync([GIGMCP, ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, stdin: "ignore" });
  if (run.exitCode !== 0) throw new Error(`gigmcp ${args.join(" ")} failed: ${run.stderr.toString()}`);
  return run.stdout.toString();
}

async function startGigmcp(sandbox: "off" | "bwrap"): Promise<Gateway> {
  const port = freePort();
  const env = {
    GIG_DATA_DIR: join(workDir, `gigmcp-${sandbox}`),
    GIG_LISTEN: `127.0.0.1:${port}`,
    GIG_SANDBOX: sandbox,
    GIG_SANDBOX_CGROUP: `gigmcp-bench-peers-${process.pid}`,
    GIG_LOG_LEVEL: "error",
    // The bench measures the gateway, not its rate limits.
    GIG_RATE_LIMIT: "1000000",
    GIG_RATE_LIMIT_IP: "1000000",
  };
  gigmcpCli(env, "user", "create", "bench@localhost", "--admin");
  gigmcpCli(env, "server", "add", "echo", "--", ...ECHO);
  gigmcpCli(env, "profile", "create", "bench");
  gigmcpCli(env, "profile", "add-server", "bench", "echo");
  const { token } = JSON.parse(gigmcpCli(env, "token", "create", "bench", "--json")) as { token: string };
  const name = sandbox === "off" ? "gigmcp" : "gigmcp (bwrap sandbox)";
  return launch(name, [GIGMCP, "serve"], env, `http://127.0.0.1:${port}/mcp/p/bench`, { Authorization: `Bearer ${token}` });
}

async function startSupergateway(): Promise<Gateway> {
  const port = freePort();
  // --stateful: a session per client, as the SDK client expects; the default (stateless) mode starts a server per request.
  const argv = [NODE, join(PEERS, "node_modules/.bin/supergateway"), "--stdio", ECHO.join(" "), "--outputTransport", "streamableHttp", "--stateful", "--port", String(port), "--logLevel", "none"];
  return launch("supergateway", argv, {}, `http://127.0.0.1:${port}/mcp`, {});
}

async function startMcpProxy(): Promise<Gateway> {
  const port = freePort();
  const apiKey = `bench-${crypto.randomUUID()}`;
  const argv = [NODE, join(PEERS, "node_modules/.bin/mcp-proxy"), "--host", "127.0.0.1", "--port", String(port), "--server", "stream", "--apiKey", apiKey, "--", ...ECHO];
  return launch("mcp-proxy", argv, {}, `http://127.0.0.1:${port}/mcp`, { "X-API-Key": apiKey });
}

// ---- the measurements ----

async function connect(gateway: Gateway): Promise<{ client: Client; transport: StreamableHTTPClientTransport; tool: string }> {
  const transport = new StreamableHTTPClientTransport(new URL(gateway.url), { requestInit: { headers: gateway.headers } });
  const client = new Client({ name: "bench", version: "1" });
  await client.connect(transport);
  const { tools } = await client.listTools();
  const tool = tools.find((candidate) => candidate.name === "echo" || candidate.name === "echo_echo")?.name;
  if (!tool) throw new Error(`${gateway.name} lists no echo tool`);
  return { client, transport, tool };
}

async function disconnect({ client, transport }: { client: Client; transport: StreamableHTTPClientTransport }): Promise<void> {
  await transport.terminateSession().catch(() => undefined);
  await client.close();
}

const echo = (client: Client, tool: string) => client.callTool({ name: tool, arguments: { message: "ping" } });

async function measure(gateway: Gateway): Promise<Result> {
  await disconnect(await connect(gateway)); // warms the gateway (and its shared backend, if it keeps one)
  const connectTimes: number[] = [];
  for (let i = 0; i < CONNECTS; i++) {
    const t0 = performance.now();
    const session = await connect(gateway);
    connectTimes.push(performance.now() - t0);
    await disconnect(session);
  }
  connectTimes.sort((a, b) => a - b);

  const session = await connect(gateway);
  for (let i = 0; i < WARMUP; i++) await echo(session.client, session.tool);
  const times: number[] = [];
  const started = performance.now();
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    await echo(session.client, session.tool);
    times.push(performance.now() - t0);
  }
  const elapsed = performance.now() - started;
  times.sort((a, b) => a - b);
  await disconnect(session);

  const opened = await Promise.allSettled(Array.from({ length: CLIENTS }, () => connect(gateway)));
  const sessions = opened.flatMap((outcome) => (outcome.status === "fulfilled" ? [outcome.value] : []));
  const errors: string[] = opened.flatMap((outcome) => (outcome.status === "rejected" ? [String(outcome.reason)] : []));
  let ok = 0;
  const concurrentStart = performance.now();
  await Promise.all(
    sessions.map(async ({ client, tool }) => {
      for (let i = 0; i < CALLS_PER_CLIENT; i++) {
        try {
          await echo(client, tool);
          ok++;
        } catch (error) {
          errors.push(String(error));
        }
      }
    }),
  );
  const concurrentElapsed = performance.now() - concurrentStart;
  const tree = treeOf(gateway.pid);
  const servers = serversIn(gateway.pid).length;
  const rssMb = tree.reduce((sum, pid) => sum + rssKb(pid), 0) / 1024;
  await Promise.all(sessions.map(disconnect));

  const failed = errors.length ? `, ${errors.length} errors (first: ${errors[0]!.slice(0, 120)})` : "";
  return {
    name: gateway.name,
    connectMs: percentile(connectTimes, 50),
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    perSecond: (CALLS / elapsed) * 1000,
    concurrentPerSecond: (ok / concurrentElapsed) * 1000,
    concurrentNote: `${sessions.length}/${CLIENTS} sessions, ${ok}/${CLIENTS * CALLS_PER_CLIENT} calls ok, ${servers} server process${servers === 1 ? "" : "es"} for them${failed}`,
    rssMb,
    processes: tree.length,
    facts: await factsAbout(gateway),
  };
}

/** What a gateway visibly does or does not do, checked on the running process. */
async function factsAbout(gateway: Gateway): Promise<string[]> {
  const facts: string[] = [];
  const anonymous = await fetch(gateway.url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "anonymous", version: "1" } } }),
  });
  await anonymous.body?.cancel();
  const anonymousSession = anonymous.headers.get("mcp-session-id");
  if (anonymousSession) await fetch(gateway.url, { method: "DELETE", headers: { ...gateway.headers, "Mcp-Session-Id": anonymousSession } });
  facts.push(anonymous.ok ? `accepts a session without any token (initialize answered ${anonymous.status})` : `refuses a request without its token (${anonymous.status})`);
  facts.push(`listens on ${listeningAddress(Number(new URL(gateway.url).port))}`);
  const session = await connect(gateway);
  const server = serversIn(gateway.pid)[0];
  if (server === undefined) {
    facts.push("its server process was not found in its process tree");
  } else {
    facts.push(uidOf(server) === uidOf(gateway.pid) ? `runs the server under its own uid (${uidOf(server)})` : `runs the server as uid ${uidOf(server)}, not its own ${uidOf(gateway.pid)}`);
    facts.push(
      netnsOf(server) === netnsOf(gateway.pid) ? "the server shares the gateway's network namespace: no egress control" : "the server has a network namespace of its own",
    );
    facts.push(procText(server, "environ").split("\0").some((entry) => entry.startsWith(`${MARKER}=`)) ? "passes its whole environment to the server" : "does not pass its environment to the server");
  }
  await disconnect(session);
  return facts;
}

// ---- the run ----

const starters: Array<() => Promise<Gateway>> = [() => startGigmcp("off"), startSupergateway, startMcpProxy];
if (withSandbox) starters.push(() => startGigmcp("bwrap"));
const results: Result[] = [];
try {
  for (const start of starters) {
    const gateway = await start();
    try {
      results.push(await measure(gateway));
    } finally {
      await gateway.stop();
    }
  }
} finally {
  rmSync(workDir, { recursive: true, force: true });
}

const base = results[0]!;
const cell = (text: string, width: number) => text.padStart(width);
console.log(`peer gateways: the echo server of dist/gigmcp over streamable HTTP, SDK client, loopback; node ${Bun.spawnSync([NODE, "--version"]).stdout.toString().trim()} for the peers`);
console.log(`connect = new client's connect+initialize+tools/list (median of ${CONNECTS}); calls = ${CALLS} sequential warm tools/call; ${CLIENTS} clients × ${CALLS_PER_CLIENT} calls; RSS of the gateway's process tree with ${CLIENTS} sessions open`);
console.log(`${"".padEnd(24)}${cell("connect", 11)}${cell("call p50", 11)}${cell("call p99", 11)}${cell("calls/s", 9)}${cell(`${CLIENTS} clients`, 12)}${cell("RSS", 10)}${cell("procs", 7)}`);
for (const r of results) {
  console.log(
    `${r.name.padEnd(24)}${cell(`${r.connectMs.toFixed(2)} ms`, 11)}${cell(`${r.p50.toFixed(3)} ms`, 11)}${cell(`${r.p99.toFixed(3)} ms`, 11)}${cell(r.perSecond.toFixed(0), 9)}${cell(`${r.concurrentPerSecond.toFixed(0)}/s`, 12)}${cell(`${r.rssMb.toFixed(0)} MB`, 10)}${cell(String(r.processes), 7)}`,
  );
}
console.log("relative to gigmcp (times and memory: >1 is slower or bigger; throughput: >1 is faster)");
for (const r of results.slice(1)) {
  const ratio = (value: number, of: number) => `${(value / of).toFixed(2)}×`;
  console.log(
    `${r.name.padEnd(24)}${cell(ratio(r.connectMs, base.connectMs), 11)}${cell(ratio(r.p50, base.p50), 11)}${cell(ratio(r.p99, base.p99), 11)}${cell(ratio(r.perSecond, base.perSecond), 9)}${cell(ratio(r.concurrentPerSecond, base.concurrentPerSecond), 12)}${cell(ratio(r.rssMb, base.rssMb), 10)}`,
  );
}
for (const r of results) console.log(`${r.name}: ${CLIENTS} clients: ${r.concurrentNote}\n  ${r.facts.join("; ")}`);
