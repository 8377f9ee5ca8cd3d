/**
 * The bubblewrap runner end to end: a real gateway (in the harness's own
 * network namespace) runs the inspector server in real sandboxes, and a real
 * MCP client asks it what it sees and makes it try to break out.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, connect, ROOT, startTestGateway, text, type TestGateway } from "../helpers/gateway.ts";
import { assertIsolatedNetns, run } from "./netns.ts";

const INSPECTOR = join(ROOT, "tests/sandbox/inspector-server.ts");
const PROXY_PORT = 18081;
const UID_BASE = 300000;
const CGROUP = `gigmcp-test-${process.pid}`;
/** An address that stands for "the rest of the world": it exists only in this test's namespace. */
const OUTSIDE = "192.0.2.1";
const PIDS_LIMIT = 64;
const MEMORY_LIMIT_MB = 256;

let gateway: TestGateway;
let client: Client;
let otherTenantClient: Client;
const listeners: { stop(closeActive?: boolean): void }[] = [];

function listen(hostname: string, port: number) {
  listeners.push(Bun.listen({ hostname, port, socket: { data() {}, open(socket) { socket.end(); } } }));
}

async function call(target: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  return text(await target.callTool({ name: `inspector_${name}`, arguments: args }));
}

async function inspect(target: Client) {
  return JSON.parse(await call(target, "inspect")) as {
    uid: number; gid: number; groups: string; capEff: string; capPrm: string; capInh: string; capBnd: string; capAmb: string;
    noNewPrivs: string; seccomp: string; hostname: string; routes: { iface: string; destination: string; gateway: string }[];
    addresses: Record<string, string[]>; pids: number; env: string[]; home: string; topLevel: string[];
    mounts: { path: string; options: string }[]; writable: { tmp: string; home: string }; rootFsWritable: string; exists: { dataDir: boolean };
  };
}

beforeAll(async () => {
  assertIsolatedNetns();
  run(["ip", "link", "set", "lo", "up"]);
  run(["ip", "addr", "add", `${OUTSIDE}/32`, "dev", "lo"]);
  // A service elsewhere: a connection that got through would be answered. The egress proxy answers on each host side.
  listen(OUTSIDE, PROXY_PORT);
  gateway = await startTestGateway({
    GIG_SANDBOX: "bwrap",
    GIG_LISTEN: "0.0.0.0:0",
    GIG_PROXY_PORT: String(PROXY_PORT),
    GIG_SANDBOX_UID_BASE: String(UID_BASE),
    GIG_SANDBOX_CGROUP: CGROUP,
    GIG_SANDBOX_PIDS: String(PIDS_LIMIT),
    GIG_SANDBOX_MEMORY: `${MEMORY_LIMIT_MB}M`,
  });
  await gateway.addServer({ name: "inspector", command: BUN, args: [INSPECTOR], roPaths: [ROOT], env: { INSPECT_HIDDEN_PATH: gateway.dataDir } });
  const token = await gateway.profile("main", ["inspector"]);
  const other = await gateway.store.users.create({ email: "other@test", role: "member" });
  const otherToken = await gateway.profile("main", ["inspector"], { tenant: other });
  client = await connect(`${gateway.url.replace("0.0.0.0", "127.0.0.1")}/mcp/p/main`, token);
  otherTenantClient = await connect(`${gateway.url.replace("0.0.0.0", "127.0.0.1")}/mcp/p/main`, otherToken);
}, 60_000);

afterAll(async () => {
  await client?.close();
  await otherTenantClient?.close();
  await gateway?.close();
  for (const listener of listeners) listener.stop(true);
});

describe("inside the sandbox", () => {
  test("identity, capabilities, no_new_privs, seccomp", async () => {
    const seen = await inspect(client);
    expect(seen.uid).toBe(65534);
    expect(seen.gid).toBe(65534);
    expect(seen.groups.split(/\s+/).filter((group) => group !== "" && group !== "65534")).toEqual([]);
    for (const set of [seen.capEff, seen.capPrm, seen.capInh, seen.capBnd, seen.capAmb]) expect(set).toBe("0000000000000000");
    expect(seen.noNewPrivs).toBe("1");
    expect(seen.seccomp).toBe("2");
    expect(seen.hostname).toBe("sandbox");
  });

  test("the only route leads to the host side of its own veth", async () => {
    const seen = await inspect(client);
    expect(Object.keys(seen.addresses).sort()).toEqual(["eth0", "lo"]);
    const eth0 = seen.addresses.eth0!;
    expect(eth0).toHaveLength(1);
    const [address, prefix] = eth0[0]!.split("/");
    expect(prefix).toBe("30");
    const hostSide = address!.replace(/\d+$/, (last) => String(Number(last) - 1));
    expect(seen.routes.filter((route) => route.destination === "0.0.0.0")).toEqual([{ iface: "eth0", destination: "0.0.0.0", gateway: hostSide }]);
  });

  test("the filesystem view: read-only root, private /tmp and home, nothing of the host's data", async () => {
    const seen = await inspect(client);
    expect(seen.writable).toEqual({ tmp: "ok", home: "ok" });
    expect(seen.rootFsWritable).not.toBe("ok");
    expect(seen.exists.dataDir).toBe(false);
    // The checkout and Bun are mounted read-only at their host paths, so their first folder (wherever the clone lives) shows up too.
    const mountedPaths = [ROOT, BUN].map((path) => path.split("/")[1]!);
    const expected = ["bin", "dev", "etc", "home", "lib", "lib64", "proc", "sbin", "tmp", "usr", ".gigmcp", ...mountedPaths];
    expect(seen.topLevel.filter((entry) => !expected.includes(entry))).toEqual([]);
    for (const path of ["/", "/usr"]) {
      expect({ path, options: seen.mounts.findLast((mount) => mount.path === path)?.options.split(",") }).toEqual({ path, options: expect.arrayContaining(["ro"]) });
    }
    expect(seen.pids).toBeLessThanOrEqual(3);
    expect(seen.home).toBe("/home/sandbox");
  });

  test("the environment holds only what the server declares plus proxy and CA settings", async () => {
    const seen = await inspect(client);
    expect(seen.env.filter((name) => !["HOME", "PATH", "PWD", "INSPECT_HIDDEN_PATH", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"].includes(name))).toEqual([]);
  });

  test("the host sees each sandbox under its own unprivileged uid, never root", async () => {
    await inspect(client);
    await inspect(otherTenantClient);
    const uids = new Set<number>();
    for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
      try {
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
        if (!cmdline.includes("inspector-server.ts")) continue;
        const status = readFileSync(`/proc/${entry}/status`, "utf8");
        uids.add(Number(/^Uid:\s+(\d+)/m.exec(status)![1]));
      } catch {
        // The process ended while we looked.
      }
    }
    expect(uids.size).toBeGreaterThanOrEqual(2);
    for (const uid of uids) expect(uid).toBeGreaterThanOrEqual(UID_BASE);
  });
});

describe("escape attempts", () => {
  const blockedBy: Record<string, string[]> = {
    write_etc: ["EROFS", "EACCES"],
    write_usr: ["EROFS", "EACCES"],
    write_root_fs: ["EROFS", "EACCES"],
    read_host_home: ["ENOENT"],
    host_run_dir: ["ENOENT"],
    docker_socket: ["ENOENT"],
    write_proc_sys: ["EROFS", "EACCES"],
    write_netns_sysctl: ["EROFS", "EACCES"],
    write_sysrq: ["EROFS", "EACCES", "ENOENT"],
    read_kcore: ["EACCES", "EPERM", "ENOENT"],
    dev_mem: ["ENOENT"],
    mknod_device: ["EPERM", "EACCES"],
    mount_tmpfs: ["EPERM"],
    chroot: ["EPERM"],
    pivot_root: ["EPERM"],
    open_tree: ["EPERM"],
    unshare_user: ["EPERM"],
    unshare_net: ["EPERM"],
    unshare_mount: ["EPERM"],
    setns: ["EPERM"],
    clone_newuser: ["EPERM"],
    ptrace_attach: ["EPERM"],
    process_vm_readv: ["EPERM"],
    setuid_root: ["EPERM", "EINVAL"], // EINVAL: host root is not even mapped into the sandbox
    kexec_load: ["EPERM"],
    init_module: ["EPERM"],
    bpf: ["EPERM"],
    perf_event_open: ["EPERM"],
    keyctl: ["EPERM"],
    add_key: ["EPERM"],
    userfaultfd: ["EPERM"],
    io_uring_setup: ["EPERM"],
    open_by_handle_at: ["EPERM"],
    sethostname: ["EPERM"],
    reboot: ["EPERM"],
    syslog_read: ["EPERM"],
    tiocsti: ["EPERM"],
    raw_socket: ["EPERM"],
    packet_socket: ["EPERM"],
    netlink_audit: ["EPERM"],
    tcp_listen: ["EACCES"],
  };

  test.each(Object.entries(blockedBy))("%s is blocked", async (name, expected) => {
    const outcome = await call(client, "attempt", { name });
    expect(expected).toContain(outcome);
  });

  test("reading the gateway's data dir by its host path finds nothing", async () => {
    expect(await call(client, "attempt", { name: "read_host_path", path: gateway.dataDir })).toBe("ENOENT");
  });

  test("changing its own address or routes is refused", async () => {
    expect(await call(client, "attempt", { name: "change_address" })).toMatch(/not permitted/i);
  });

  test("network: only its own host-side address on the proxy port answers", async () => {
    const seen = await inspect(client);
    const address = seen.addresses.eth0![0]!.split("/")[0]!;
    const hostSide = address.replace(/\d+$/, (last) => String(Number(last) - 1));
    const gatewayPort = Number(new URL(gateway.url).port);
    expect(await call(client, "attempt", { name: "connect", host: hostSide, port: PROXY_PORT })).toBe("connected");
    expect(await call(client, "attempt", { name: "connect", host: hostSide, port: gatewayPort })).not.toBe("connected");
    expect(await call(client, "attempt", { name: "connect", host: OUTSIDE, port: PROXY_PORT })).not.toBe("connected");
    expect(await call(client, "attempt", { name: "connect", host: "127.0.0.1", port: gatewayPort })).not.toBe("connected");
  });

  test("two tenants of one server get two sandboxes that cannot reach each other", async () => {
    const mine = await inspect(client);
    const theirs = await inspect(otherTenantClient);
    const theirAddress = theirs.addresses.eth0![0]!.split("/")[0]!;
    expect(theirAddress).not.toBe(mine.addresses.eth0![0]!.split("/")[0]);
    const theirHostSide = theirAddress.replace(/\d+$/, (last) => String(Number(last) - 1));
    expect(await call(client, "attempt", { name: "connect", host: theirAddress, port: PROXY_PORT })).not.toBe("connected");
    expect(await call(client, "attempt", { name: "connect", host: theirHostSide, port: PROXY_PORT })).not.toBe("connected");
  });

  test("a fork bomb hits the pids limit and the server survives", async () => {
    expect(await call(client, "attempt", { name: "fork_bomb" })).toMatch(/after \d+ processes/);
    expect((await inspect(client)).uid).toBe(65534);
  });

  test("a memory bomb is killed inside its sandbox; the server restarts on next use", async () => {
    await expect(client.callTool({ name: "inspector_memory_bomb", arguments: { mb: MEMORY_LIMIT_MB * 2 } })).rejects.toThrow();
    expect((await inspect(client)).uid).toBe(65534);
  });

  test("the battery covers at least 30 distinct attempts", async () => {
    const names = JSON.parse(await call(client, "attempts")) as string[];
    expect(names.length).toBeGreaterThanOrEqual(30);
    expect(Object.keys(blockedBy).length).toBeGreaterThanOrEqual(30);
  });
});

describe("status", () => {
  test("each sandbox reports the memory its cgroup accounts, below the limit", async () => {
    await inspect(client);
    await inspect(otherTenantClient);
    const running = gateway.gateway.backendStatus().filter((backend) => backend.server === "inspector");
    expect(running).toHaveLength(2);
    for (const backend of running) {
      expect(backend.memoryBytes).toBeGreaterThan(1024 * 1024);
      expect(backend.memoryBytes).toBeLessThanOrEqual(MEMORY_LIMIT_MB * 1024 * 1024);
    }
  });
});
