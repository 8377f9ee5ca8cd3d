/**
 * The bubblewrap runner: every backend in its own sandbox. Start-up order:
 *
 *   gateway ─ launcher (joins the sandbox's cgroups, rlimits, drops to the
 *   sandbox's own unprivileged host uid) ─ exec bwrap (new namespaces, the
 *   read-only filesystem view) ─ reports the sandbox pid on the info fd and
 *   waits on the block fd ─ the gateway moves a veth into the sandbox's netns
 *   and releases the block ─ init (address, route; drops capabilities; sets
 *   no_new_privs, Landlock and seccomp) ─ exec the server.
 *
 * The launcher and init are the two modes of the embedded bootstrap binary.
 */
import { read as readFd, writeSync, closeSync } from "node:fs";
import { promisify } from "node:util";
import type { Config } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { bwrapArgs, isLoaderVariable, PROXY_CA_PATH, SANDBOX_HOME, SYSTEM_CA_BUNDLE } from "./bwrap.ts";
import { CgroupManager, type Limits, type SandboxCgroup } from "./cgroup.ts";
import { openVerifiedEntrypoint, pulledEntrypoint } from "./entrypoint.ts";
import { createRuntimeDir, type RuntimeDir } from "./runtime-dir.ts";
import type { LaunchSpec, Runner, RunningProcess } from "./types.ts";

const readAsync = promisify(readFd);

/** What the runner needs from the network manager: one /30 and a veth per sandbox. */
export interface SandboxNetworks {
  reserve(identity: { serverId: string; serverName: string; tenantId: string }): Promise<NetworkLease>;
}

export interface NetworkLease {
  /** Small integer unique among live sandboxes; also picks the sandbox's host uid. */
  slot: number;
  hostAddress: string;
  sandboxAddress: string;
  prefixLength: number;
  /** Creates the veth with its peer (named eth0) inside the network namespace of `pid`. */
  attach(pid: number): Promise<void>;
  /** Idempotent. */
  release(): Promise<void>;
}

export interface SandboxRunnerOptions {
  config: Config;
  networks: SandboxNetworks;
  log: Logger;
  /** Host paths the bundled servers need: the gigmcp executable (and, from source, its tree). */
  selfPaths: string[];
  /** The bwrap executable; found in PATH by default. */
  bwrap?: string;
  /** The egress proxy's CA (PEM), trusted inside every sandbox; without it servers see only the system roots. */
  caCertificatePem?: string;
}

/** The fds bwrap gets beyond stdio: it writes the sandbox pid on one and waits on the other. */
const INFO_FD = 3;
const BLOCK_FD = 4;
/** An installed server's entrypoint, opened and hash-checked by the gateway. */
const ENTRYPOINT_FD = 5;
const OPEN_FILES_LIMIT = 1024;

export async function createSandboxRunner(options: SandboxRunnerOptions): Promise<Runner> {
  const { config, networks, log } = options;
  if (process.getuid?.() !== 0) {
    throw new Error("GIG_SANDBOX=bwrap needs the gateway to run as root (in Docker: root with cap_add NET_ADMIN); use GIG_SANDBOX=off for development");
  }
  const bwrap = options.bwrap ?? Bun.which("bwrap");
  if (!bwrap) throw new Error("GIG_SANDBOX=bwrap needs bubblewrap: apt-get install bubblewrap");
  const cgroups = new CgroupManager(config.sandboxCgroup);
  await cgroups.reconcile();
  const runtime: RuntimeDir = await createRuntimeDir(options.caCertificatePem);

  return {
    name: "bwrap",
    start: (spec) => startSandbox(spec, { options, bwrap, cgroups, runtime, log }),
    async close() {
      runtime.remove();
    },
  };
}

interface RunnerState {
  options: SandboxRunnerOptions;
  bwrap: string;
  cgroups: CgroupManager;
  runtime: RuntimeDir;
  log: Logger;
}

async function startSandbox(spec: LaunchSpec, state: RunnerState): Promise<RunningProcess> {
  const { options, bwrap, cgroups, runtime } = state;
  const { config } = options;
  const identity = { serverId: spec.server.id, serverName: spec.server.name, tenantId: spec.tenantId };
  const lease = await options.networks.reserve(identity);
  let cgroup: SandboxCgroup | undefined;
  let child: ReturnType<typeof Bun.spawn> | undefined;
  let entrypointFd: number | undefined;
  const release = async () => {
    cgroup?.kill();
    await Promise.allSettled([lease.release(), cgroup?.remove()]);
  };

  try {
    cgroup = await cgroups.create(`sandbox-${lease.slot}`, limitsFor(spec, config));
    const proxy = `http://${lease.hostAddress}:${config.proxyPort}`;
    const env: Record<string, string> = {
      ...spec.env,
      HOME: SANDBOX_HOME,
      HTTPS_PROXY: proxy,
      HTTP_PROXY: proxy,
      https_proxy: proxy,
      http_proxy: proxy,
      NO_PROXY: "localhost,127.0.0.1",
      no_proxy: "localhost,127.0.0.1",
      ...trustEnvironment(runtime.trust !== undefined),
    };
    const loaderEnv = Object.fromEntries(Object.entries(env).filter(([name]) => isLoaderVariable(name)));
    const plainEnv = Object.fromEntries(Object.entries(env).filter(([name]) => !isLoaderVariable(name)));
    const installed = pulledEntrypoint(spec.server);
    if (installed) entrypointFd = openVerifiedEntrypoint(spec.server, spec.argv[0]!);
    const argvInside = installed ? [installed.entrypoint, ...spec.argv.slice(1)] : spec.argv;
    const readOnlyPaths = [...(installed ? [] : [spec.argv[0]!]), ...spec.server.roPaths, ...(spec.server.kind === "builtin" ? options.selfPaths : [])];
    const uid = String(config.sandboxUidBase + lease.slot);
    const argv = [
      runtime.launcher,
      "launch",
      "--uid", uid,
      "--gid", uid,
      ...cgroup.procsFiles.flatMap((file) => ["--cgroup-procs", file]),
      "--nofile", String(OPEN_FILES_LIMIT),
      "--",
      ...bwrapArgs({
        bwrap,
        initBinary: runtime.launcher,
        etcDir: runtime.etcDir,
        trust: runtime.trust,
        argv: argvInside,
        readOnlyPaths,
        entrypoint: installed ? { fd: ENTRYPOINT_FD, path: installed.entrypoint } : undefined,
        network: { address: `${lease.sandboxAddress}/${lease.prefixLength}`, gateway: lease.hostAddress, proxyPort: config.proxyPort },
        loaderEnv,
        infoFd: INFO_FD,
        blockFd: BLOCK_FD,
      }),
    ];
    child = Bun.spawn(argv, { env: plainEnv, stdio: ["pipe", "pipe", "pipe", "pipe", "pipe", ...(entrypointFd === undefined ? [] : [entrypointFd])] });
    const infoFd = child.stdio[INFO_FD] as unknown as number;
    const blockFd = child.stdio[BLOCK_FD] as unknown as number;
    try {
      const sandboxPid = await readSandboxPid(infoFd);
      await lease.attach(sandboxPid);
      writeSync(blockFd, "1");
    } finally {
      closeSync(blockFd);
      closeSync(infoFd);
    }
  } catch (error) {
    child?.kill("SIGKILL");
    if (entrypointFd !== undefined) closeSync(entrypointFd);
    const stderr = child ? (await new Response(child.stderr as ReadableStream).text()).trim() : "";
    await release();
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot start the sandbox of ${spec.server.name}: ${reason}${stderr ? `: ${stderr}` : ""}`);
  }

  // bwrap has its own copy of the descriptor, and has copied the file by the time the sandbox runs.
  if (entrypointFd !== undefined) closeSync(entrypointFd);
  const started = child;
  const sandboxCgroup = cgroup;
  return {
    pid: started.pid,
    stdin: started.stdin as RunningProcess["stdin"],
    stdout: started.stdout as ReadableStream<Uint8Array>,
    stderr: started.stderr as ReadableStream<Uint8Array>,
    exited: started.exited.then(async () => {
      await release();
      return started.exitCode;
    }),
    kill: (signal) => started.kill(signal),
    memoryBytes: () => sandboxCgroup.memoryBytes(),
  };
}

/** Where HTTPS clients of the common runtimes look for trusted roots; all lead to the proxy's CA when there is one. */
function trustEnvironment(withProxyCa: boolean): Record<string, string> {
  const bundle = { SSL_CERT_FILE: SYSTEM_CA_BUNDLE, REQUESTS_CA_BUNDLE: SYSTEM_CA_BUNDLE, CURL_CA_BUNDLE: SYSTEM_CA_BUNDLE };
  // Node and Bun add NODE_EXTRA_CA_CERTS to their built-in roots, which ignore the system bundle.
  return withProxyCa ? { ...bundle, NODE_EXTRA_CA_CERTS: PROXY_CA_PATH } : bundle;
}

function limitsFor(spec: LaunchSpec, config: Config): Limits {
  return {
    memoryBytes: spec.server.limits?.memoryBytes ?? config.sandboxMemoryBytes,
    pids: spec.server.limits?.pids ?? config.sandboxPids,
    cpuWeight: spec.server.limits?.cpuWeight ?? config.sandboxCpuWeight,
  };
}

/** bwrap writes `{"child-pid": N, …}` on the info fd once the namespaces exist; EOF first means it failed. */
async function readSandboxPid(fd: number): Promise<number> {
  const buffer = Buffer.alloc(4096);
  let text = "";
  for (;;) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await readAsync(fd, buffer, 0, buffer.length, null));
    } catch (error) {
      // The pipe is non-blocking: nothing written yet.
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
      await Bun.sleep(1);
      continue;
    }
    if (bytesRead === 0) break;
    text += buffer.toString("utf8", 0, bytesRead);
    const match = /"child-pid"\s*:\s*(\d+)/.exec(text);
    if (match) return Number(match[1]);
  }
  throw new Error("bubblewrap exited before creating the sandbox");
}
