/**
 * A stdio MCP server that runs inside the sandbox and reports what it sees
 * (`inspect`) and what happens when it tries to break out (`attempt`). Raw
 * system calls go through libc's syscall(2) with bun:ffi, so each attempt
 * reaches the kernel exactly as a hostile native server's would.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect as tcpConnect, createServer } from "node:net";
import { hostname } from "node:os";
import { z } from "zod";

const { symbols: libc } = dlopen("libc.so.6", {
  syscall: { args: Array(7).fill(FFIType.i64), returns: FFIType.i64 },
  __errno_location: { args: [], returns: FFIType.ptr },
  _exit: { args: [FFIType.i32], returns: FFIType.void },
});

const ERRNO: Record<number, string> = { 1: "EPERM", 2: "ENOENT", 9: "EBADF", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 22: "EINVAL", 30: "EROFS", 38: "ENOSYS", 95: "EOPNOTSUPP", 97: "EAFNOSUPPORT" };
const cString = (text: string) => ptr(Buffer.from(`${text}\0`));

/** Raw syscall: the errno name on failure, "ok" on success. */
function sys(number: number, ...args: (number | bigint | ReturnType<typeof ptr>)[]): string {
  const padded = [...args.map((arg) => (typeof arg === "bigint" ? arg : BigInt(Number(arg)))), ...Array(6 - args.length).fill(0n)];
  return Number(libc.syscall(number, ...padded)) === -1 ? errnoName() : "ok";
}

function errnoName(): string {
  const errno = read.i32(libc.__errno_location()!, 0);
  return ERRNO[errno] ?? `errno ${errno}`;
}

const SYS = {
  ioctl: 16, socket: 41, clone: 56, ptrace: 101, syslog: 103, setuid: 105, mknod: 133, pivot_root: 155, chroot: 161, mount: 165,
  reboot: 169, sethostname: 170, init_module: 175, add_key: 248, keyctl: 250, kexec_load: 246, unshare: 272, perf_event_open: 298,
  open_by_handle_at: 304, setns: 308, process_vm_readv: 310, bpf: 321, userfaultfd: 323, io_uring_setup: 425, open_tree: 428,
};
const CLONE = { NEWNS: 0x20000, NEWUSER: 0x10000000, NEWNET: 0x40000000, SIGCHLD: 17 };

function fsError(action: () => unknown): string {
  try {
    action();
    return "ok";
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

/** TCP connect: "connected", an error code, or "timeout" (a firewall drop). */
function tryConnect(host: string, port: number, timeoutMs = 1500): Promise<string> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve("timeout");
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code ?? error.message);
    });
  });
}

function tryListen(): Promise<string> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    server.listen(0, "0.0.0.0", () => server.close(() => resolve("ok")));
  });
}

async function forkBomb(): Promise<string> {
  const children: ReturnType<typeof Bun.spawn>[] = [];
  try {
    for (let i = 0; i < 2000; i++) children.push(Bun.spawn(["/bin/sleep", "30"], { stdio: ["ignore", "ignore", "ignore"] }));
    return "ok";
  } catch (error) {
    return `${(error as NodeJS.ErrnoException).code ?? "error"} after ${children.length} processes`;
  } finally {
    for (const child of children) child.kill("SIGKILL");
  }
}

type Attempt = (target: { host?: string; port?: number; path?: string }) => string | Promise<string>;

/** Every attempt returns "ok" if it got through, else how it was stopped. */
const attempts: Record<string, Attempt> = {
  write_etc: () => fsError(() => writeFileSync("/etc/passwd", "x")),
  write_usr: () => fsError(() => writeFileSync("/usr/bin/gigmcp-escape", "x")),
  write_root_fs: () => fsError(() => writeFileSync("/gigmcp-escape", "x")),
  read_host_home: () => fsError(() => readdirSync("/root")),
  read_host_path: ({ path }) => fsError(() => readdirSync(path!)),
  host_run_dir: () => fsError(() => readdirSync("/run")),
  docker_socket: () => fsError(() => closeSync(openSync("/var/run/docker.sock", "r"))),
  write_proc_sys: () => fsError(() => writeFileSync("/proc/sys/kernel/core_pattern", "|/tmp/x")),
  // A sysctl of the sandbox's own network namespace: the in-sandbox root user could, without capabilities.
  write_netns_sysctl: () => fsError(() => writeFileSync("/proc/sys/net/ipv4/ip_forward", "1")),
  write_sysrq: () => fsError(() => writeFileSync("/proc/sysrq-trigger", "c")),
  read_kcore: () => fsError(() => closeSync(openSync("/proc/kcore", "r"))),
  dev_mem: () => fsError(() => closeSync(openSync("/dev/mem", "r"))),
  mknod_device: () => sys(SYS.mknod, cString("/tmp/gigmcp-null"), 0o20666, (1 << 8) | 3),
  mount_tmpfs: () => sys(SYS.mount, cString("none"), cString("/tmp"), cString("tmpfs"), 0, 0),
  chroot: () => sys(SYS.chroot, cString("/tmp")),
  pivot_root: () => sys(SYS.pivot_root, cString("/tmp"), cString("/tmp")),
  open_tree: () => sys(SYS.open_tree, -100, cString("/"), 1),
  unshare_user: () => sys(SYS.unshare, CLONE.NEWUSER),
  unshare_net: () => sys(SYS.unshare, CLONE.NEWNET),
  unshare_mount: () => sys(SYS.unshare, CLONE.NEWNS),
  setns: () => {
    const fd = openSync("/proc/self/ns/net", "r");
    try {
      return sys(SYS.setns, fd, 0);
    } finally {
      closeSync(fd);
    }
  },
  clone_newuser: () => {
    const result = Number(libc.syscall(SYS.clone, CLONE.NEWUSER | CLONE.SIGCHLD, 0, 0, 0, 0, 0));
    if (result === 0) libc._exit(0); // the child, should the clone ever succeed
    return result > 0 ? "ok" : errnoName();
  },
  ptrace_attach: () => sys(SYS.ptrace, 16, 1, 0, 0),
  process_vm_readv: () => sys(SYS.process_vm_readv, 1, 0, 0, 0, 0, 0),
  setuid_root: () => sys(SYS.setuid, 0),
  kexec_load: () => sys(SYS.kexec_load, 0, 0, 0, 0),
  init_module: () => sys(SYS.init_module, 0, 0, cString("")),
  bpf: () => sys(SYS.bpf, 0, 0, 0),
  perf_event_open: () => sys(SYS.perf_event_open, 0, 0, -1, -1, 0),
  keyctl: () => sys(SYS.keyctl, 0, 0, 0, 0, 0),
  add_key: () => sys(SYS.add_key, cString("user"), cString("gigmcp"), cString("x"), 1, -2),
  userfaultfd: () => sys(SYS.userfaultfd, 0),
  io_uring_setup: () => sys(SYS.io_uring_setup, 1, ptr(new Uint8Array(120))),
  open_by_handle_at: () => sys(SYS.open_by_handle_at, -100, ptr(new Uint8Array(128)), 0),
  sethostname: () => sys(SYS.sethostname, cString("escaped"), 7),
  reboot: () => sys(SYS.reboot, 0xfee1dead, 672274793, 0x1234567),
  syslog_read: () => sys(SYS.syslog, 3, ptr(new Uint8Array(64)), 64),
  tiocsti: () => sys(SYS.ioctl, 0, 0x5412, ptr(new Uint8Array([65]))),
  raw_socket: () => sys(SYS.socket, 2, 3, 1),
  packet_socket: () => sys(SYS.socket, 17, 3, 0),
  netlink_audit: () => sys(SYS.socket, 16, 3, 9),
  change_address: () => {
    const result = Bun.spawnSync(["/usr/sbin/ip", "addr", "add", "10.88.255.254/32", "dev", "eth0"], { stderr: "pipe" });
    return result.exitCode === 0 ? "ok" : result.stderr.toString().trim() || `exit ${result.exitCode}`;
  },
  tcp_listen: () => tryListen(),
  connect: ({ host, port }) => tryConnect(host!, port!),
  fork_bomb: () => forkBomb(),
};

function statusField(status: string, field: string): string {
  return new RegExp(`^${field}:[ \\t]*(.*)$`, "m").exec(status)?.[1]?.trim() ?? "";
}

const server = new McpServer({ name: "inspector", version: "1.0.0" });

server.registerTool("inspect", { description: "what the sandbox looks like from inside" }, async () => {
  const status = readFileSync("/proc/self/status", "utf8");
  const routes = readFileSync("/proc/net/route", "utf8").trim().split("\n").slice(1).map((line) => {
    const [iface, destination, gateway] = line.split(/\s+/);
    const ip = (hex: string) => [...Buffer.from(hex, "hex")].reverse().join(".");
    return { iface, destination: ip(destination!), gateway: ip(gateway!) };
  });
  const report = {
    uid: process.getuid!(),
    gid: process.getgid!(),
    groups: statusField(status, "Groups"),
    capEff: statusField(status, "CapEff"),
    capPrm: statusField(status, "CapPrm"),
    capInh: statusField(status, "CapInh"),
    capBnd: statusField(status, "CapBnd"),
    capAmb: statusField(status, "CapAmb"),
    noNewPrivs: statusField(status, "NoNewPrivs"),
    seccomp: statusField(status, "Seccomp"),
    hostname: hostname(),
    routes,
    // From the kernel rather than os.networkInterfaces(), which hides a link until its operstate catches up.
    addresses: Object.fromEntries(
      (JSON.parse(Bun.spawnSync(["/usr/sbin/ip", "-j", "-4", "addr"]).stdout.toString()) as { ifname: string; addr_info: { local: string; prefixlen: number }[] }[]).map(
        (link) => [link.ifname, link.addr_info.map((info) => `${info.local}/${info.prefixlen}`)],
      ),
    ),
    pids: readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).length,
    env: Object.keys(process.env).sort(),
    home: process.env.HOME,
    cwd: process.cwd(),
    topLevel: readdirSync("/").sort(),
    mounts: readFileSync("/proc/self/mountinfo", "utf8").trim().split("\n").map((line) => {
      const fields = line.split(" ");
      return { path: fields[4], options: fields[5] };
    }),
    writable: { tmp: fsError(() => writeFileSync("/tmp/probe", "x")), home: fsError(() => writeFileSync(`${process.env.HOME}/probe`, "x")) },
    rootFsWritable: fsError(() => mkdirSync("/gigmcp-probe")),
    exists: { dataDir: existsSync(process.env.INSPECT_HIDDEN_PATH ?? "/nonexistent") },
  };
  return { content: [{ type: "text", text: JSON.stringify(report) }] };
});

server.registerTool(
  "attempt",
  { description: "tries one named escape", inputSchema: { name: z.string(), host: z.string().optional(), port: z.number().optional(), path: z.string().optional() } },
  async ({ name, ...target }) => {
    const attempt = attempts[name];
    if (!attempt) throw new Error(`unknown attempt ${name}`);
    return { content: [{ type: "text", text: await attempt(target) }] };
  },
);

server.registerTool("attempts", { description: "names of every escape attempt" }, async () => ({
  content: [{ type: "text", text: JSON.stringify(Object.keys(attempts)) }],
}));

server.registerTool("memory_bomb", { description: "allocates and touches `mb` megabytes", inputSchema: { mb: z.number() } }, async ({ mb }) => {
  const chunks: Buffer[] = [];
  for (let i = 0; i < mb; i++) chunks.push(Buffer.alloc(1024 * 1024, i & 0xff));
  return { content: [{ type: "text", text: `allocated ${chunks.length} MB` }] };
});

await server.connect(new StdioServerTransport());
process.stdin.on("end", () => libc._exit(0));
