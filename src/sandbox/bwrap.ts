/**
 * The bubblewrap command line of one sandbox, built as data so tests can read
 * it: what the server sees of the filesystem, which namespaces it gets, and
 * the in-sandbox init that finishes the lockdown before exec'ing the server.
 */
import { existsSync, lstatSync, readlinkSync } from "node:fs";

/** Where the trusted init is mounted inside every sandbox. */
export const INIT_PATH = "/.gigmcp/init";
export const SANDBOX_HOME = "/home/sandbox";
export const SANDBOX_UID = 65534;
/** The sandbox side of the veth, created in the sandbox's netns by the host. */
export const SANDBOX_INTERFACE = "eth0";

/** System directories every server may read; symlinks (merged /usr) are recreated as symlinks. */
const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
/** The device nodes a server may use; no terminals, no shared memory, no disks. */
const DEVICES = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];
/** The few host files under /etc a program needs: TLS roots, the loader cache, alternatives, time zone. */
const SYSTEM_ETC = ["/etc/ssl", "/etc/ca-certificates", "/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime"];
/** The system's trusted roots, as Debian lays them out; inside a sandbox the proxy's CA is appended. */
export const SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";
/** The egress proxy's CA alone, for runtimes that add extra roots to their own. */
export const PROXY_CA_PATH = "/etc/gigmcp-ca.pem";

/** Generated per gateway: an /etc/passwd, group and hosts naming only the sandbox user. */
export const GENERATED_ETC = ["passwd", "group", "hosts"] as const;

export interface SandboxNetworkPlan {
  /** Sandbox address with prefix, e.g. 10.88.0.2/30. */
  address: string;
  /** Host side of the veth: the only route, and where the egress proxy listens. */
  gateway: string;
  proxyPort: number;
}

export interface BwrapPlan {
  bwrap: string;
  /** Host path of the init binary (readable by the sandbox's host uid). */
  initBinary: string;
  /** Host directory holding the GENERATED_ETC files. */
  etcDir: string;
  /** Host files with the system roots plus the proxy's CA, and the CA alone; absent without a proxy CA. */
  trust?: { bundle: string; proxyCa: string };
  /** The server's executable and arguments. */
  argv: string[];
  /** Host paths made readable at the same place: the executable, --ro paths, runtimes. */
  readOnlyPaths: string[];
  /**
   * An installed server's entrypoint: an open descriptor (already hash-checked) whose content bwrap
   * copies to its path in the image. A copy, because bwrap resolves bind sources by path and the
   * store is private to the gateway; and the bytes copied are the bytes hashed.
   */
  entrypoint?: { fd: number; path: string };
  network: SandboxNetworkPlan;
  /** Variables the dynamic loader would honour in bwrap itself; set only inside via --setenv. */
  loaderEnv: Record<string, string>;
  infoFd: number;
  blockFd: number;
}

/** Environment variables that change how a program is loaded; never given to the host-side bwrap process. */
export function isLoaderVariable(name: string): boolean {
  return /^(LD_|GCONV_PATH$|GETCONF_DIR$|HOSTALIASES$|LOCALDOMAIN$|MALLOC_|NLSPATH$|RES_OPTIONS$|TMPDIR$|TZDIR$)/.test(name);
}

export function bwrapArgs(plan: BwrapPlan): string[] {
  const args: string[] = [
    "--unshare-all",
    "--unshare-user",
    "--uid", String(SANDBOX_UID),
    "--gid", String(SANDBOX_UID),
    "--hostname", "sandbox",
    // The init needs these two until it has configured eth0 and emptied the bounding set; it drops them before exec.
    "--cap-add", "CAP_NET_ADMIN",
    "--cap-add", "CAP_SETPCAP",
    // No --disable-userns and no --dev: bwrap 0.8 implements both with a second, nested user
    // namespace, which would leave init without CAP_NET_ADMIN over the sandbox's netns. Seccomp
    // refuses every namespace-creating call instead, and /dev is built from single device nodes.
    "--die-with-parent",
    "--new-session",
    "--info-fd", String(plan.infoFd),
    "--block-fd", String(plan.blockFd),
  ];
  for (const dir of SYSTEM_DIRS) args.push(...systemPath(dir));
  for (const path of SYSTEM_ETC) if (existsSync(path)) args.push("--ro-bind", path, path);
  for (const name of GENERATED_ETC) args.push("--ro-bind", `${plan.etcDir}/${name}`, `/etc/${name}`);
  if (plan.trust) args.push("--ro-bind", plan.trust.bundle, SYSTEM_CA_BUNDLE, "--ro-bind", plan.trust.proxyCa, PROXY_CA_PATH);
  args.push(
    "--proc", "/proc",
    ...DEVICES.flatMap((device) => ["--dev-bind", device, device]),
    "--symlink", "/proc/self/fd", "/dev/fd",
    "--symlink", "/proc/self/fd/0", "/dev/stdin",
    "--symlink", "/proc/self/fd/1", "/dev/stdout",
    "--symlink", "/proc/self/fd/2", "/dev/stderr",
    "--tmpfs", "/tmp",
    "--perms", "0700", "--tmpfs", SANDBOX_HOME,
    "--ro-bind", plan.initBinary, INIT_PATH,
  );
  for (const path of unique(plan.readOnlyPaths)) args.push("--ro-bind", path, path);
  if (plan.entrypoint) args.push("--perms", "0555", "--file", String(plan.entrypoint.fd), plan.entrypoint.path);
  args.push("--remount-ro", "/", "--chdir", SANDBOX_HOME);
  for (const [name, value] of Object.entries(plan.loaderEnv)) args.push("--setenv", name, value);
  args.push(
    "--",
    INIT_PATH, "init",
    "--interface", SANDBOX_INTERFACE,
    "--address", plan.network.address,
    "--gateway", plan.network.gateway,
    "--connect-port", String(plan.network.proxyPort),
    "--rw", "/tmp",
    "--rw", SANDBOX_HOME,
    "--",
    ...plan.argv,
  );
  return [plan.bwrap, ...args];
}

function systemPath(dir: string): string[] {
  if (!existsSync(dir)) return [];
  if (lstatSync(dir).isSymbolicLink()) return ["--symlink", readlinkSync(dir), dir];
  return ["--ro-bind", dir, dir];
}

/** Drops paths already visible through a listed parent (binding /a/b after /a would be redundant). */
function unique(paths: string[]): string[] {
  const sorted = [...new Set(paths)].sort();
  return sorted.filter((path) => !sorted.some((other) => other !== path && path.startsWith(`${other}/`)) && !SYSTEM_DIRS.some((dir) => path === dir || path.startsWith(`${dir}/`)));
}

/** The generated /etc files: only the sandbox user and loopback exist. */
export function generatedEtc(): Record<(typeof GENERATED_ETC)[number], string> {
  return {
    passwd: `root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:${SANDBOX_UID}:${SANDBOX_UID}:sandbox:${SANDBOX_HOME}:/usr/sbin/nologin\n`,
    group: `root:x:0:\nsandbox:x:${SANDBOX_UID}:\n`,
    hosts: "127.0.0.1 localhost\n::1 localhost\n",
  };
}
