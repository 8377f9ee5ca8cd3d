/**
 * The benchmark of issue 10: one run on loopback, side by side, the same
 * stdio echo server (the bundled echo of dist/gigmcp) behind
 *
 * (a) the floor: the MCP SDK's own streamable HTTP server calling the echo
 *     tool in-process (scripts/bench-floor.ts, a process of its own), and,
 *     as a reference, the same server forwarding each call to the stdio
 *     server through the SDK's client: what the process hop alone costs;
 * (b) gigmcp with its sandbox off and, as root with bubblewrap, on;
 * (c) the peers a user would pick instead, `supergateway` and `mcp-proxy`.
 *
 * The client is always the SDK's Client with StreamableHTTPClientTransport.
 * For each: p50/p99 of a warm tools/call and calls/s with 1, 16 and 64
 * clients (a session each, calling back to back, errors counted), and the
 * RSS of the whole process tree with 64 sessions open. Ratios are to (a);
 * the table, the machine and the versions go to bench/RESULTS.md, with each
 * target of the issue and whether this run met it. Prints, never asserts.
 *
 * Then facts each gateway shows on the spot (token, listening address, what
 * the server process inherits), so the table says what a peer does not do.
 *
 * The peers are pinned in scripts/peers (not dependencies of gigmcp) and run
 * on Node. mcp-hub is not among them: its client endpoint is the deprecated
 * HTTP+SSE transport (GET /mcp, POST /messages), not streamable HTTP.
 *
 * As root with bubblewrap, the script re-runs itself in a network namespace
 * of its own (as bench-sandbox.ts does) to add gigmcp with its sandbox.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const GIGMCP = join(ROOT, "dist/gigmcp");
const PEERS = join(import.meta.dir, "peers");
const RESULTS = join(ROOT, "bench/RESULTS.md");
const ROOT_NODE = join(ROOT, "node_modules/.bin/node");
const NODE = existsSync(ROOT_NODE) ? ROOT_NODE : (Bun.which("node") ?? "node");
const ECHO = [GIGMCP, "mcp", "echo"];
const CONNECTS = 20;
const WARMUP = 200;
const CONCURRENCY = [1, 16, 64];
// Calls per level, shared among its clients; the 1-client level gives the latency percentiles.
const CALLS_PER_LEVEL = 9600;
// Each new session's own first calls are not timed.
const WARMUP_PER_CLIENT = 5;
const IN_NAMESPACE = "--in-own-netns";
// Set on every gateway, looked for in its server's environment.
const MARKER = "GIG_BENCH_MARKER";
// Issue 10's targets.
const TARGET_P50_RATIO = 1.3;
const TARGET_CALLS_PER_SECOND = 5000;

/** The floor, the SDK's own forwarding to the stdio server (what the hop alone costs), or a gateway. */
type Role = "floor" | "reference" | "gateway";

interface Gateway {
  name: string;
  /** The floor has no server process; it and the forwarding reference are no gateways: no token, no facts to check. */
  role: Role;
  url: string;
  headers: Record<string, string>;
  pid: number;
  stop(): Promise<void>;
}

interface Level {
  clients: number;
  sessions: number;
  ok: number;
  errors: string[];
  perSecond: number;
  p50: number;
  p99: number;
  /** CPU time of the gateway's whole process tree per successful call. */
  cpuMsPerCall: number;
  /** Share of one core the bench's own clients used meanwhile. */
  clientCores: number;
}

interface Result {
  name: string;
  role: Role;
  levels: Level[];
  rssMb: number;
  processes: number;
  servers: number;
  facts: string[];
}

if (!existsSync(GIGMCP)) throw new Error("dist/gigmcp is missing: run `make build` first");
const withSandbox = process.argv.includes(IN_NAMESPACE);
// --quick: the floor and gigmcp without its sandbox only, printed, RESULTS.md untouched (for profiling work).
const quick = process.argv.includes("--quick");
if (!quick && !withSandbox && !existsSync(join(PEERS, "node_modules/.bin/mcp-proxy"))) {
  const install = Bun.spawnSync(["npm", "ci", "--prefix", PEERS, "--no-audit", "--no-fund"], { stdio: ["ignore", "inherit", "inherit"] });
  if (install.exitCode !== 0) throw new Error("installing the peers failed: run `npm ci --prefix scripts/peers` and retry");
}
if (!quick && !withSandbox && process.getuid?.() === 0 && Bun.which("bwrap") && Bun.which("unshare")) {
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

/** User + system CPU time of a process so far, in ms (from /proc/<pid>/stat, in clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readText(`/proc/${pid}/stat`).replace(/^.*\) /s, "").split(" ");
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) * 10;
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

async function launch(name: string, argv: string[], env: Record<string, string>, url: string, headers: Record<string, string>, role: Role = "gateway"): Promise<Gateway> {
  const logFile = join(workDir, `${name.replace(/\W+/g, "-")}.log`);
  const child = Bun.spawn(argv, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: workDir, [MARKER]: "1", ...env }, stdio: ["ignore", Bun.file(logFile), Bun.file(logFile)] });
  await waitUntilServing(url, name, logFile, child.exited);
  return {
    name,
    role,
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

async function startFloor(): Promise<Gateway> {
  const port = freePort();
  const floor = "SDK server, in-process tool (floor)";
  return launch(floor, [process.execPath, join(import.meta.dir, "bench-floor.ts"), String(port)], {}, `http://127.0.0.1:${port}/mcp`, {}, "floor");
}

/** The floor's server forwarding each call to the stdio server through the SDK's client: the hop alone, no gateway. */
async function startForwarding(): Promise<Gateway> {
  const port = freePort();
  const name = "SDK server forwarding over stdio (reference)";
  const argv = [process.execPath, join(import.meta.dir, "bench-floor.ts"), String(port), "--forward", ...ECHO];
  return launch(name, argv, {}, `http://127.0.0.1:${port}/mcp`, {}, "reference");
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

type Session = { client: Client; transport: StreamableHTTPClientTransport; tool: string };

async function connect(gateway: Gateway): Promise<Session> {
  const transport = new StreamableHTTPClientTransport(new URL(gateway.url), { requestInit: { headers: gateway.headers } });
  const client = new Client({ name: "bench", version: "1" });
  await client.connect(transport);
  const { tools } = await client.listTools();
  const tool = tools.find((candidate) => candidate.name === "echo" || candidate.name === "echo_echo")?.name;
  if (!tool) throw new Error(`${gateway.name} lists no echo tool`);
  return { client, transport, tool };
}

async function disconnect({ client, transport }: Session): Promise<void> {
  await transport.terminateSession().catch(() => undefined);
  await client.close();
}

async function echo({ client, tool }: Session): Promise<void> {
  const result = await client.callTool({ name: tool, arguments: { message: "ping" } });
  if (result.isError) throw new Error(`the echo tool failed: ${JSON.stringify(result.content).slice(0, 200)}`);
}

const treeCpuMs = (pid: number) => treeOf(pid).reduce((sum, member) => sum + cpuMs(member), 0);

/** `clients` sessions calling back to back, CALLS_PER_LEVEL calls among them; the sessions stay open for the caller to close. */
async function level(gateway: Gateway, clients: number): Promise<{ level: Level; sessions: Session[] }> {
  const opened = await Promise.allSettled(Array.from({ length: clients }, () => connect(gateway)));
  const sessions = opened.flatMap((outcome) => (outcome.status === "fulfilled" ? [outcome.value] : []));
  const errors: string[] = opened.flatMap((outcome) => (outcome.status === "rejected" ? [String(outcome.reason)] : []));
  await Promise.all(sessions.map(async (session) => {
    for (let i = 0; i < WARMUP_PER_CLIENT; i++) await echo(session).catch(() => undefined);
  }));
  const times: number[] = [];
  const callsPerClient = CALLS_PER_LEVEL / clients;
  const cpuBefore = treeCpuMs(gateway.pid);
  const clientBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    sessions.map(async (session) => {
      for (let i = 0; i < callsPerClient; i++) {
        const t0 = performance.now();
        try {
          await echo(session);
          times.push(performance.now() - t0);
        } catch (error) {
          errors.push(String(error));
        }
      }
    }),
  );
  const elapsed = performance.now() - started;
  const clientCpu = process.cpuUsage(clientBefore);
  const cpu = treeCpuMs(gateway.pid) - cpuBefore;
  times.sort((a, b) => a - b);
  const ok = times.length;
  return {
    sessions,
    level: {
      clients,
      sessions: sessions.length,
      ok,
      errors,
      perSecond: (ok / elapsed) * 1000,
      p50: ok ? percentile(times, 50) : NaN,
      p99: ok ? percentile(times, 99) : NaN,
      cpuMsPerCall: ok ? cpu / ok : NaN,
      clientCores: (clientCpu.user + clientCpu.system) / 1000 / elapsed,
    },
  };
}

async function measure(gateway: Gateway): Promise<Result> {
  const warm = await connect(gateway); // warms the gateway (and its shared backend, if it keeps one)
  for (let i = 0; i < WARMUP; i++) await echo(warm);
  await disconnect(warm);

  const levels: Level[] = [];
  let rssMb = 0;
  let processes = 0;
  let servers = 0;
  for (const clients of CONCURRENCY) {
    const { level: measured, sessions } = await level(gateway, clients);
    levels.push(measured);
    if (clients === Math.max(...CONCURRENCY)) {
      const tree = treeOf(gateway.pid);
      rssMb = tree.reduce((sum, pid) => sum + rssKb(pid), 0) / 1024;
      processes = tree.length;
      servers = serversIn(gateway.pid).length;
    }
    await Promise.all(sessions.map(disconnect));
  }
  return { name: gateway.name, role: gateway.role, levels, rssMb, processes, servers, facts: await factsAbout(gateway) };
}

/** What a gateway visibly does or does not do, checked on the running process. */
async function factsAbout(gateway: Gateway): Promise<string[]> {
  const facts: string[] = [];
  const connectTimes: number[] = [];
  for (let i = 0; i < CONNECTS; i++) {
    const t0 = performance.now();
    const session = await connect(gateway);
    connectTimes.push(performance.now() - t0);
    await disconnect(session);
  }
  connectTimes.sort((a, b) => a - b);
  facts.push(`a new session (connect + initialize + tools/list) takes ${percentile(connectTimes, 50).toFixed(1)} ms (median of ${CONNECTS})`);
  if (gateway.role !== "gateway") return facts;
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

const load = loadavg().map((value) => value.toFixed(2)).join(" ");
const starters: Array<() => Promise<Gateway>> = [startFloor, startForwarding, () => startGigmcp("off")];
if (withSandbox) starters.push(() => startGigmcp("bwrap"));
if (!quick) starters.push(startSupergateway, startMcpProxy);
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

// ---- the report ----

const floor = results[0]!;
const at = (result: Result, clients: number) => result.levels.find((measured) => measured.clients === clients)!;
const atOne = (result: Result) => at(result, 1);
const packageVersion = (dir: string) => (JSON.parse(readText(join(dir, "package.json")) || "{}") as { version?: string }).version ?? "not installed";
const git = (...args: string[]) => Bun.spawnSync(["git", "-C", ROOT, ...args]).stdout.toString().trim();
const commit = `${git("rev-parse", "--short", "HEAD") || "unknown"}${git("status", "--porcelain", "--untracked-files=no") ? " with uncommitted changes" : ""}`;
const nodeVersion = Bun.spawnSync([NODE, "--version"]).stdout.toString().trim();
const totalErrors = (result: Result) => result.levels.reduce((sum, measured) => sum + measured.errors.length, 0);

const machine = [
  `- CPU: ${cpus()[0]?.model.trim() ?? "unknown"}, ${cpus().length} cores; kernel ${release()}; load average at start ${load} (1, 5, 15 min)`,
  `- bun ${Bun.version} (the floor, gigmcp and the bench client), node ${nodeVersion} (the peers); gigmcp ${packageVersion(ROOT)} at commit ${commit}, sandbox runs ${withSandbox ? "included (root, own network namespace)" : "skipped (they need root, bubblewrap and unshare)"}`,
  `- @modelcontextprotocol/sdk ${packageVersion(join(ROOT, "node_modules/@modelcontextprotocol/sdk"))} (client and floor), supergateway ${packageVersion(join(PEERS, "node_modules/supergateway"))} (--stateful), mcp-proxy ${packageVersion(join(PEERS, "node_modules/mcp-proxy"))} (--apiKey, --host 127.0.0.1)`,
];

const ms = (value: number) => `${value.toFixed(3)} ms`;
const times = (value: number, of: number) => `${(value / of).toFixed(2)}×`;
const headers = ["", "call p50", "call p99", ...CONCURRENCY.map((clients) => `calls/s, ${clients} client${clients === 1 ? "" : "s"}`), `RSS, ${Math.max(...CONCURRENCY)} sessions`, "errors"];
const rows = results.map((r) => [
  r.name,
  ms(atOne(r).p50),
  ms(atOne(r).p99),
  ...CONCURRENCY.map((clients) => at(r, clients).perSecond.toFixed(0)),
  `${r.rssMb.toFixed(0)} MB (${r.processes} proc${r.processes === 1 ? "" : "s"})`,
  String(totalErrors(r)),
]);
const ratioRows = results.slice(1).map((r) => [
  r.name,
  times(atOne(r).p50, atOne(floor).p50),
  times(atOne(r).p99, atOne(floor).p99),
  ...CONCURRENCY.map((clients) => times(at(r, clients).perSecond, at(floor, clients).perSecond)),
  times(r.rssMb, floor.rssMb),
  "",
]);
const markdownTable = (header: string[], body: string[][]) =>
  [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`, ...body.map((row) => `| ${row.join(" | ")} |`)].join("\n");
const textTable = (header: string[], body: string[][]) => {
  const widths = header.map((_, column) => Math.max(...[header, ...body].map((row) => row[column]!.length)));
  return [header, ...body].map((row) => row.map((text, column) => (column === 0 ? text.padEnd(widths[column]!) : text.padStart(widths[column]!))).join("  ")).join("\n");
};

// The targets of issue 10, judged on this run.
const gigmcps = results.filter((r) => r.name.startsWith("gigmcp"));
const peers = results.filter((r) => r.role === "gateway" && !r.name.startsWith("gigmcp"));
const verdict = (met: boolean) => (met ? "met" : "NOT met");
const targets: string[] = [];
for (const g of gigmcps) {
  const ratio = atOne(g).p50 / atOne(floor).p50;
  targets.push(`- warm call p50 ≤ ${TARGET_P50_RATIO}× the floor, ${g.name}: ${ratio.toFixed(2)}× — ${verdict(ratio <= TARGET_P50_RATIO)}`);
}
for (const g of gigmcps) {
  const best = g.levels.reduce((top, measured) => (measured.perSecond > top.perSecond ? measured : top));
  targets.push(
    `- ≥ ${TARGET_CALLS_PER_SECOND.toLocaleString("en")} calls/s on ${cpus().length} cores, ${g.name}: best ${best.perSecond.toFixed(0)} calls/s (${best.clients} client${best.clients === 1 ? "" : "s"}) — ${verdict(best.perSecond >= TARGET_CALLS_PER_SECOND)}`,
  );
}
for (const g of gigmcps) {
  // Lower is better for latency and memory, higher for throughput.
  const columns: Array<{ name: string; value(r: Result): number; higherIsBetter: boolean }> = [
    { name: "call p50", value: (r) => atOne(r).p50, higherIsBetter: false },
    { name: "call p99", value: (r) => atOne(r).p99, higherIsBetter: false },
    ...CONCURRENCY.map((clients) => ({ name: `calls/s with ${clients}`, value: (r: Result) => at(r, clients).perSecond, higherIsBetter: true })),
    { name: "RSS", value: (r) => r.rssMb, higherIsBetter: false },
  ];
  const behind = columns.flatMap((column) =>
    peers.filter((peer) => (column.higherIsBetter ? column.value(peer) >= column.value(g) : column.value(peer) <= column.value(g))).map((peer) => `${column.name} (${peer.name})`),
  );
  targets.push(`- ahead of both peers on every row, ${g.name}: ${behind.length ? `NOT met — behind or level on ${behind.join(", ")}` : "met"}`);
}

const legend =
  `The same stdio echo server behind each, on loopback, the SDK's Client with streamable HTTP as the client. Latency: ${CALLS_PER_LEVEL} sequential warm tools/call on one session ` +
  `(after ${WARMUP} warm-up calls); calls/s: N clients with a session each sharing ${CALLS_PER_LEVEL} calls, back to back; RSS of the whole process tree with ` +
  `${Math.max(...CONCURRENCY)} sessions open; errors: failed sessions and calls over all levels. The floor is the MCP SDK's own streamable HTTP server calling the tool in-process.`;
const details = results.map((r) => {
  const perLevel = r.levels
    .map(
      (measured) =>
        `${measured.clients}: ${measured.sessions}/${measured.clients} sessions, ${measured.ok}/${CALLS_PER_LEVEL} calls ok, p50 ${ms(measured.p50)}, p99 ${ms(measured.p99)}, ` +
        `${measured.cpuMsPerCall.toFixed(3)} ms of its CPU per call, bench client ${(measured.clientCores * 100).toFixed(0)} % of a core${measured.errors.length ? `; first error: ${measured.errors[0]!.slice(0, 160)}` : ""}`,
    )
    .join("\n  - ");
  const server = r.role === "floor" ? "" : `; ${r.servers} server process${r.servers === 1 ? "" : "es"} for ${Math.max(...CONCURRENCY)} sessions`;
  return `- ${r.name}${server}; ${r.facts.join("; ")}\n  - ${perLevel}`;
});

console.log("peers: " + legend);
console.log(machine.join("\n"));
console.log(textTable(headers, rows));
console.log("relative to the floor (times and memory: >1 is slower or bigger; calls/s: <1 is fewer)");
console.log(textTable(headers, ratioRows));
console.log(targets.join("\n"));
console.log(details.join("\n"));

if (quick) process.exit(0);
mkdirSync(join(ROOT, "bench"), { recursive: true });
writeFileSync(
  RESULTS,
  [
    "# Benchmark results",
    "",
    `Written by \`make bench\` (scripts/bench-peers.ts) on ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; each run replaces this file. ${legend}`,
    "",
    "## Machine and versions",
    "",
    ...machine,
    "",
    "## Measured",
    "",
    markdownTable(headers, rows),
    "",
    "## Relative to the floor",
    "",
    "Times and memory: above 1 is slower or bigger; calls/s: below 1 is fewer.",
    "",
    markdownTable(headers, ratioRows),
    "",
    "## Targets (issue 10)",
    "",
    ...targets,
    "",
    "## Per level, and what each shows on the spot",
    "",
    ...details,
    "",
  ].join("\n"),
);
console.log(`written to ${RESULTS}`);
