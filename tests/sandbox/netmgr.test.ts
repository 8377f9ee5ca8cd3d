/**
 * The network manager against the real kernel, inside the harness's own
 * network namespace. "Sandboxes" are plain processes in network namespaces of
 * their own (`unshare --net sleep`); their side is configured here with ip,
 * and connections are tried from inside them through nsenter.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "../../src/log/index.ts";
import { bringUpLoopback, createNetManager, RtnetlinkError, type NetManager, type SandboxIdentity, type SandboxNetwork } from "../../src/netmgr/index.ts";
import { assertIsolatedNetns, run } from "./netns.ts";

const POOL = "10.88.0.0/16";
const PROXY_PORT = 18090;
const OTHER_PORT = 18091;
/** A source address no slot owns, routed back to the first sandbox so that only the firewall can stop it. */
const SPOOFED = "10.88.200.2";
const PROBE_TIMEOUT_MS = 1000;
const NETMGR = join(import.meta.dir, "../../src/netmgr/index.ts");
const log = createLogger("warn");

/**
 * Connects (or sends a datagram) from inside a sandbox's netns and prints the
 * outcome: "connected", an error code such as ECONNREFUSED, "sent" for UDP, or
 * "timeout" when the SYN was silently dropped.
 */
const PROBE = `
const { PROBE_HOST: host, PROBE_PORT: port, PROBE_SOURCE: source, PROBE_UDP: udp } = process.env;
const finish = (outcome) => { console.log(outcome); process.exit(0); };
setTimeout(() => finish("timeout"), ${PROBE_TIMEOUT_MS});
if (udp) {
  const socket = require("node:dgram").createSocket("udp4");
  socket.send("probe", Number(port), host, (error) => finish(error ? error.code : "sent"));
} else {
  const socket = require("node:net").connect({ host, port: Number(port), localAddress: source || undefined });
  socket.on("connect", () => finish("connected"));
  socket.on("error", (error) => finish(error.code ?? String(error)));
}`;

async function probe(pid: number, host: string, port: number, options: { source?: string; udp?: boolean } = {}): Promise<string> {
  const child = Bun.spawn(["nsenter", "-t", String(pid), "-n", "--", process.execPath, "-e", PROBE], {
    env: { ...process.env, PROBE_HOST: host, PROBE_PORT: String(port), PROBE_SOURCE: options.source ?? "", PROBE_UDP: options.udp ? "1" : "" },
    stdout: "pipe",
  });
  return (await new Response(child.stdout).text()).trim();
}

/** Reserves a slot and attaches it to `pid`, as the sandbox runner does; releases the slot if attaching fails. */
async function attach(manager: NetManager, identity: SandboxIdentity, pid: number): Promise<SandboxNetwork> {
  const lease = await manager.reserve(identity);
  try {
    await lease.attach(pid);
  } catch (error) {
    await lease.release();
    throw error;
  }
  return lease;
}

interface Sandbox {
  pid: number;
  process: ReturnType<typeof Bun.spawn>;
}

const sandboxes: Sandbox[] = [];

/** A process in a network namespace of its own, ready once its namespace differs from ours. */
async function startSandbox(): Promise<Sandbox> {
  const child = Bun.spawn(["unshare", "--net", "sleep", "1000"]);
  const own = readlinkSync("/proc/self/ns/net");
  for (let attempt = 0; ; attempt++) {
    try {
      if (readlinkSync(`/proc/${child.pid}/ns/net`) !== own) break;
    } catch {
      // Not there yet.
    }
    if (attempt > 200) throw new Error("the sandbox process did not get its own network namespace");
    await Bun.sleep(5);
  }
  const sandbox = { pid: child.pid, process: child };
  sandboxes.push(sandbox);
  return sandbox;
}

/** What the sandbox's init does in production: address, link up, default route to the host side. */
function configureSandbox(sandbox: Sandbox, network: SandboxNetwork): void {
  const inside = ["nsenter", "-t", String(sandbox.pid), "-n", "--", "ip"];
  run([...inside, "link", "set", "lo", "up"]);
  run([...inside, "addr", "add", `${network.sandboxAddress}/${network.prefixLength}`, "dev", "eth0"]);
  run([...inside, "link", "set", "eth0", "up"]);
  run([...inside, "route", "add", "default", "via", network.hostAddress]);
}

function sandboxLinks(): string[] {
  return run(["ip", "-o", "link"])
    .split("\n")
    .map((line) => /^\d+: ([^:@]+)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined && /^gig\d+$/.test(name));
}

/** The set as the nft tool sees it, independent of the manager's own reading. */
function nftElements(): unknown[] {
  const listing = JSON.parse(run(["nft", "-j", "list", "set", "inet", "gigmcp", "allowed_flows"])) as {
    nftables: { set?: { elem?: unknown[] } }[];
  };
  return listing.nftables.flatMap((entry) => entry.set?.elem ?? []);
}

const changedSysctls = new Map<string, string>();

/** Sets a sysctl of the harness namespace; afterAll restores it for the test files that run next in it. */
function setSysctl(name: string, value: string): void {
  const path = `/proc/sys/${name.replaceAll(".", "/")}`;
  if (!changedSysctls.has(path)) changedSysctls.set(path, readFileSync(path, "utf8"));
  writeFileSync(path, value);
}

function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

const proxyPeers: string[] = [];
const udpPeers: string[] = [];
const listeners: { stop(): void }[] = [];
let manager: NetManager;

beforeAll(async () => {
  assertIsolatedNetns();
  bringUpLoopback();
  // With forwarding on, only the firewall stands between two sandboxes.
  setSysctl("net.ipv4.ip_forward", "1");
  setSysctl("net.ipv4.conf.all.rp_filter", "0");
  setSysctl("net.ipv4.conf.default.rp_filter", "0");
  // Stand-ins for the egress proxy and for any other service on the host: both answer whoever gets through.
  listeners.push(
    Bun.listen({ hostname: "0.0.0.0", port: PROXY_PORT, socket: { open: (socket) => void proxyPeers.push(socket.remoteAddress), data() {} } }),
    Bun.listen({ hostname: "0.0.0.0", port: OTHER_PORT, socket: { open: (socket) => void socket.end(), data() {} } }),
  );
  const udp = await Bun.udpSocket({ hostname: "0.0.0.0", port: PROXY_PORT, socket: { data: (_socket, _data, _port, address) => void udpPeers.push(address) } });
  listeners.push({ stop: () => udp.close() });
  manager = createNetManager({ pool: POOL, proxyPort: PROXY_PORT, log });
  await manager.start();
});

afterAll(async () => {
  await manager?.stop();
  for (const sandbox of sandboxes) sandbox.process.kill("SIGKILL");
  for (const listener of listeners) listener.stop();
  for (const [path, value] of changedSysctls) writeFileSync(path, value);
});

describe("configuration", () => {
  test.each([
    ["10.88.1.0/16", "10.88.1.0 is not the network address of a /16: use 10.88.0.0/16"],
    ["10.88.0.0/29", "the prefix must be /8 to /28"],
    ["10.0.0.0/7", "the prefix must be /8 to /28"],
    ["fd00::/64", "expected an IPv4 network in CIDR notation"],
    ["10.88.0.0", "expected an IPv4 network in CIDR notation"],
    ["300.1.0.0/16", "expected an IPv4 network in CIDR notation"],
  ])("pool %s is refused with a fix", (pool, message) => {
    expect(() => createNetManager({ pool, proxyPort: PROXY_PORT, log })).toThrow(`invalid sandbox address pool "${pool}": ${message}`);
  });

  test("a bad proxy port or a manager that is not started is refused", async () => {
    expect(() => createNetManager({ pool: POOL, proxyPort: 0, log })).toThrow("invalid egress proxy port 0");
    const idle = createNetManager({ pool: POOL, proxyPort: PROXY_PORT, log });
    await expect(attach(idle, { serverId: "s", serverName: "s", tenantId: "t" }, process.pid)).rejects.toThrow("call start() first");
  });
});

describe("two sandboxes", () => {
  let first: Sandbox;
  let second: Sandbox;
  let firstNetwork: SandboxNetwork;
  let secondNetwork: SandboxNetwork;

  beforeAll(async () => {
    first = await startSandbox();
    second = await startSandbox();
  });

  test("attach gives the host side its address and eth0 to the sandbox, down and unaddressed", async () => {
    firstNetwork = await attach(manager, { serverId: "server-1", serverName: "server-1", tenantId: "tenant-1" }, first.pid);
    expect(firstNetwork).toMatchObject({ slot: 0, hostIfname: "gig0", hostAddress: "10.88.0.1", sandboxAddress: "10.88.0.2", prefixLength: 30 });
    expect(run(["ip", "-o", "addr", "show", "dev", "gig0"])).toContain("inet 10.88.0.1/30");
    expect(run(["ip", "-o", "link", "show", "gig0"])).toMatch(/<[^>]*\bUP\b[^>]*>/);
    const inside = run(["nsenter", "-t", String(first.pid), "-n", "--", "ip", "-o", "addr", "show", "dev", "eth0"]);
    expect(run(["nsenter", "-t", String(first.pid), "-n", "--", "ip", "-o", "link", "show", "eth0"])).toContain("state DOWN");
    expect(inside).not.toContain("inet ");

    secondNetwork = await attach(manager, { serverId: "server-2", serverName: "server-2", tenantId: "tenant-2" }, second.pid);
    expect(secondNetwork).toMatchObject({ slot: 1, hostIfname: "gig1", hostAddress: "10.88.0.5", sandboxAddress: "10.88.0.6" });
    expect(await manager.listAllowed()).toEqual([
      { hostIfname: "gig0", sandboxAddress: "10.88.0.2", hostAddress: "10.88.0.1", port: PROXY_PORT },
      { hostIfname: "gig1", sandboxAddress: "10.88.0.6", hostAddress: "10.88.0.5", port: PROXY_PORT },
    ]);
    expect(nftElements()).toHaveLength(2);
  });

  test("identify maps source addresses to their sandbox", () => {
    expect(manager.identify("10.88.0.2")).toEqual({ serverId: "server-1", serverName: "server-1", tenantId: "tenant-1" });
    expect(manager.identify("::ffff:10.88.0.6")).toEqual({ serverId: "server-2", serverName: "server-2", tenantId: "tenant-2" });
    expect(manager.identify("10.88.0.1")).toBeUndefined();
    expect(manager.identify(SPOOFED)).toBeUndefined();
  });

  test("a sandbox reaches its host address on the proxy port, and nothing else", async () => {
    configureSandbox(first, firstNetwork);
    configureSandbox(second, secondNetwork);
    // The spoofed address gets a working return path, so a failure below can only be the firewall's doing.
    run(["nsenter", "-t", String(first.pid), "-n", "--", "ip", "addr", "add", `${SPOOFED}/32`, "dev", "eth0"]);
    run(["ip", "route", "add", `${SPOOFED}/32`, "dev", "gig0"]);

    const outcomes = await Promise.all([
      probe(first.pid, "10.88.0.1", PROXY_PORT),
      probe(second.pid, "10.88.0.5", PROXY_PORT),
      probe(first.pid, "10.88.0.1", OTHER_PORT),
      probe(second.pid, "10.88.0.1", PROXY_PORT),
      probe(second.pid, "10.88.0.2", PROXY_PORT),
      probe(first.pid, "10.88.0.1", PROXY_PORT, { source: SPOOFED }),
      probe(first.pid, "10.88.0.1", PROXY_PORT, { udp: true }),
    ]);
    expect(outcomes).toEqual(["connected", "connected", "timeout", "timeout", "timeout", "timeout", "sent"]);
    expect(proxyPeers.sort()).toEqual(["10.88.0.2", "10.88.0.6"]);
    expect(proxyPeers.map((peer) => manager.identify(peer)?.serverId).sort()).toEqual(["server-1", "server-2"]);
    await Bun.sleep(100);
    expect(udpPeers).toEqual([]);
  });

  test("control: without the table the same attempts get through", async () => {
    const saved = run(["nft", "list", "table", "inet", "gigmcp"]);
    run(["nft", "delete", "table", "inet", "gigmcp"]);
    try {
      const outcomes = await Promise.all([
        probe(first.pid, "10.88.0.1", OTHER_PORT),
        probe(second.pid, "10.88.0.1", PROXY_PORT),
        probe(second.pid, "10.88.0.2", PROXY_PORT),
        probe(first.pid, "10.88.0.1", PROXY_PORT, { source: SPOOFED }),
        probe(first.pid, "10.88.0.1", PROXY_PORT, { udp: true }),
      ]);
      // Nothing listens in the first sandbox, so reaching it shows as a refusal rather than a connection.
      expect(outcomes).toEqual(["connected", "connected", "ECONNREFUSED", "connected", "sent"]);
      await Bun.sleep(100);
      expect(udpPeers).toEqual(["10.88.0.2"]);
    } finally {
      Bun.spawnSync(["nft", "-f", "-"], { stdin: new TextEncoder().encode(saved) });
    }
    expect(nftElements()).toHaveLength(2);
  });

  test("release removes the link, the element and the identity, once", async () => {
    await secondNetwork.release();
    await secondNetwork.release();
    expect(sandboxLinks()).toEqual(["gig0"]);
    expect((await manager.listAllowed()).map((flow) => flow.hostIfname)).toEqual(["gig0"]);
    expect(manager.identify("10.88.0.6")).toBeUndefined();
    expect(await probe(second.pid, "10.88.0.5", PROXY_PORT)).not.toBe("connected");
  });

  test("a sandbox that died took its veth along; release still cleans up", async () => {
    first.process.kill("SIGKILL");
    await first.process.exited;
    // The kernel dismantles a dead namespace asynchronously.
    for (let attempt = 0; sandboxLinks().includes("gig0"); attempt++) {
      if (attempt > 500) throw new Error("gig0 outlived its sandbox's namespace");
      await Bun.sleep(10);
    }
    await firstNetwork.release();
    expect(sandboxLinks()).toEqual([]);
    expect(nftElements()).toEqual([]);
    expect(manager.identify("10.88.0.2")).toBeUndefined();
  });
});

describe("failures", () => {
  test("attach to a pid that is gone fails with the kernel's reason and leaves nothing", async () => {
    const gone = Bun.spawn(["true"]);
    await gone.exited;
    const error = await attach(manager, { serverId: "s", serverName: "s", tenantId: "t" }, gone.pid).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RtnetlinkError);
    expect((error as Error).message).toBe(`create veth gig0 (peer eth0 in the netns of pid ${gone.pid}): ESRCH (No such process)`);
    expect(sandboxLinks()).toEqual([]);
    expect(nftElements()).toEqual([]);
  });

  test("attach into a namespace that already has an eth0 fails and frees its slot", async () => {
    const sandbox = await startSandbox();
    run(["nsenter", "-t", String(sandbox.pid), "-n", "--", "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"]);
    await expect(attach(manager, { serverId: "s", serverName: "s", tenantId: "t" }, sandbox.pid)).rejects.toThrow("EEXIST (File exists)");
    expect(sandboxLinks()).toEqual([]);
    run(["nsenter", "-t", String(sandbox.pid), "-n", "--", "ip", "link", "del", "eth0"]);
    const network = await attach(manager, { serverId: "s", serverName: "s", tenantId: "t" }, sandbox.pid);
    expect(network.slot).toBe(0);
    await network.release();
  });

  test("a stray link in the way of a slot fails that attach, is removed, and the retry succeeds", async () => {
    const sandbox = await startSandbox();
    run(["ip", "link", "add", "gig0", "type", "veth", "peer", "name", "stray0"]);
    await expect(attach(manager, { serverId: "s", serverName: "s", tenantId: "t" }, sandbox.pid)).rejects.toThrow("create veth gig0 (peer eth0 in the netns of pid");
    expect(sandboxLinks()).toEqual([]);
    const network = await attach(manager, { serverId: "s", serverName: "s", tenantId: "t" }, sandbox.pid);
    expect(network.slot).toBe(0);
    await network.release();
  });

  test("a lease reserved first is attached later, and its slot is held meanwhile", async () => {
    const sandbox = await startSandbox();
    const lease = await manager.reserve({ serverId: "s", serverName: "s", tenantId: "t" });
    expect(manager.identify(lease.sandboxAddress)).toBeUndefined();
    const other = await attach(manager, { serverId: "other", serverName: "other", tenantId: "t" }, sandbox.pid);
    expect(other.slot).not.toBe(lease.slot);
    await other.release();
    await lease.attach(sandbox.pid);
    expect(manager.identify(lease.sandboxAddress)).toEqual({ serverId: "s", serverName: "s", tenantId: "t" });
    await expect(lease.attach(sandbox.pid)).rejects.toThrow("attached already");
    await lease.release();
    await expect(lease.attach(sandbox.pid)).rejects.toThrow("its lease was released");
    expect(sandboxLinks()).toEqual([]);
  });
});

describe("lifecycle", () => {
  test("200 attach/release cycles leave no link, no element and no open fd behind", async () => {
    const sandbox = await startSandbox();
    const identity = { serverId: "cycle", serverName: "cycle", tenantId: "t" };
    await (await attach(manager, identity, sandbox.pid)).release();
    const fdsBefore = openFds();
    for (let cycle = 0; cycle < 200; cycle++) {
      const network = await attach(manager, identity, sandbox.pid);
      expect(network.hostIfname).toBe("gig0");
      await network.release();
    }
    expect(openFds()).toBe(fdsBefore);
    expect(sandboxLinks()).toEqual([]);
    expect(nftElements()).toEqual([]);
  });

  test("stop releases everything and removes the table", async () => {
    const sandbox = await startSandbox();
    const network = await attach(manager, { serverId: "s", serverName: "s", tenantId: "t" }, sandbox.pid);
    await attach(manager, { serverId: "s2", serverName: "s2", tenantId: "t" }, (await startSandbox()).pid);
    await manager.stop();
    expect(sandboxLinks()).toEqual([]);
    expect(run(["nft", "list", "tables"])).not.toContain("gigmcp");
    expect(manager.identify(network.sandboxAddress)).toBeUndefined();
    await network.release();
    await manager.stop();
  });

  test("start after a crash removes the links and elements a killed gateway left", async () => {
    const victims = [await startSandbox(), await startSandbox()];
    // A gateway that attaches two sandboxes and is then killed with SIGKILL: no cleanup at all.
    const crashed = Bun.spawn([process.execPath, "-e", `
      const { createNetManager } = await import(${JSON.stringify(NETMGR)});
      const log = { debug() {}, info() {}, warn() {}, error() {}, child() { return log; } };
      const manager = createNetManager({ pool: ${JSON.stringify(POOL)}, proxyPort: ${PROXY_PORT}, log });
      await manager.start();
      for (const pid of ${JSON.stringify(victims.map((victim) => victim.pid))}) await (await manager.reserve({ serverId: "s", serverName: "s", tenantId: "t" })).attach(pid);
      console.log("attached");
      await Bun.sleep(100000);
    `], { stdout: "pipe", stderr: "inherit" });
    const reader = crashed.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("attached");
    crashed.kill("SIGKILL");
    await crashed.exited;
    expect(sandboxLinks()).toEqual(["gig0", "gig1"]);
    expect(nftElements()).toHaveLength(2);
    // Links of others that merely look similar are left alone.
    run(["ip", "link", "add", "gigx0", "type", "veth", "peer", "name", "gigx1"]);

    manager = createNetManager({ pool: POOL, proxyPort: PROXY_PORT, log });
    await manager.start();
    expect(sandboxLinks()).toEqual([]);
    expect(nftElements()).toEqual([]);
    expect(run(["ip", "-o", "link", "show", "gigx0"])).toContain("gigx0");
    run(["ip", "link", "del", "gigx0"]);
    const network = await attach(manager, { serverId: "s", serverName: "s", tenantId: "t" }, victims[0]!.pid);
    expect(network.slot).toBe(0);
    await network.release();
  });
});
