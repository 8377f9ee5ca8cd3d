/**
 * Resource limits per sandbox with cgroups: memory, pids and CPU weight, each
 * from the cgroup v2 hierarchy when it offers the controller, else from the
 * v1 hierarchy that does (hosts still mounting v1 controllers, like this
 * project's CI machine). Every sandbox gets its own group under
 * `<hierarchy>/<parent>/`; the launcher joins it before exec'ing bwrap, so the
 * whole sandbox is accounted and limited from its first instruction.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export type Controller = "memory" | "pids" | "cpu";
const CONTROLLERS: Controller[] = ["memory", "pids", "cpu"];

export interface Limits {
  memoryBytes: number;
  pids: number;
  /** 1-10000, 100 an even share (cgroup v2 semantics; scaled for v1 cpu.shares). */
  cpuWeight: number;
}

interface Hierarchy {
  version: 1 | 2;
  /** Mount point of the hierarchy. */
  mount: string;
  controllers: Controller[];
}

/** The hierarchies holding the controllers we need, from /proc/self/mountinfo. */
export function discoverHierarchies(mountinfo = readFileSync("/proc/self/mountinfo", "utf8")): Hierarchy[] {
  const found: Hierarchy[] = [];
  const claimed = new Set<Controller>();
  const mounts = mountinfo.split("\n").flatMap((line) => {
    const [left, right] = line.split(" - ");
    if (!left || !right) return [];
    const [fsType, , superOptions = ""] = right.split(" ");
    return [{ mount: left.split(" ")[4]!, fsType: fsType!, superOptions: superOptions.split(",") }];
  });
  // v2 first: when it offers a controller, the v1 copy cannot be in use.
  for (const { mount, fsType } of mounts.filter((entry) => entry.fsType === "cgroup2")) {
    const available = readOptional(join(mount, "cgroup.controllers")).split(/\s+/);
    const controllers = CONTROLLERS.filter((name) => available.includes(name) && !claimed.has(name));
    if (fsType === "cgroup2" && controllers.length > 0) {
      found.push({ version: 2, mount, controllers });
      controllers.forEach((name) => claimed.add(name));
    }
  }
  for (const { mount, fsType, superOptions } of mounts.filter((entry) => entry.fsType === "cgroup")) {
    const controllers = CONTROLLERS.filter((name) => superOptions.includes(name) && !claimed.has(name));
    if (fsType === "cgroup" && controllers.length > 0) {
      found.push({ version: 1, mount, controllers });
      controllers.forEach((name) => claimed.add(name));
    }
  }
  return found;
}

function readOptional(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** One sandbox's groups, one per hierarchy. */
export interface SandboxCgroup {
  /** The cgroup.procs files the launcher writes its pid to. */
  readonly procsFiles: string[];
  /** SIGKILLs every process still in the groups. */
  kill(): void;
  /** Kills what is left and removes the groups. Idempotent. */
  remove(): Promise<void>;
  /** Whether the memory limit was hit (the kernel's OOM killer ran). */
  oomKilled(): boolean;
  /** Memory the group's processes use now (page cache included, as the limit counts it); null if unreadable. */
  memoryBytes(): number | null;
}

export class CgroupManager {
  private readonly hierarchies: Hierarchy[];

  constructor(private readonly parent: string, hierarchies = discoverHierarchies()) {
    const missing = CONTROLLERS.filter((name) => !hierarchies.some((hierarchy) => hierarchy.controllers.includes(name)));
    if (missing.length > 0) {
      throw new Error(
        `cgroup controllers ${missing.join(", ")} are not available: sandboxes cannot be limited. ` +
          "Mount cgroup v2 with them enabled (or v1 hierarchies) and run the gateway as root (in Docker: cgroupns private).",
      );
    }
    this.hierarchies = hierarchies;
  }

  /** Creates the parent groups and removes sandbox groups left behind by a previous run (kill -9 of the gateway). */
  async reconcile(): Promise<void> {
    for (const hierarchy of this.hierarchies) {
      const parent = join(hierarchy.mount, this.parent);
      try {
        if (hierarchy.version === 2) enableControllers(hierarchy, this.parent);
        mkdirSync(parent, { recursive: true });
        if (hierarchy.version === 2) writeFileSync(join(parent, "cgroup.subtree_control"), hierarchy.controllers.map((name) => `+${name}`).join(" "));
      } catch (error) {
        throw new Error(
          `cannot prepare the sandboxes' cgroup ${parent} (${(error as NodeJS.ErrnoException).code ?? String(error)}): ` +
            "the gateway needs a writable cgroup hierarchy to limit sandboxes (in Docker mount /sys/fs/cgroup read-write; see README, Running in Docker)",
        );
      }
      for (const entry of readdirSync(parent, { withFileTypes: true })) {
        if (entry.isDirectory()) await removeGroup(hierarchy, join(parent, entry.name));
      }
    }
  }

  /** Creates the groups of one sandbox with its limits. */
  async create(name: string, limits: Limits): Promise<SandboxCgroup> {
    const paths: { hierarchy: Hierarchy; path: string }[] = [];
    try {
      for (const hierarchy of this.hierarchies) {
        const path = join(hierarchy.mount, this.parent, name);
        mkdirSync(path);
        paths.push({ hierarchy, path });
        applyLimits(hierarchy, path, limits);
      }
    } catch (error) {
      for (const { hierarchy, path } of paths) await removeGroup(hierarchy, path);
      throw new Error(`cannot create the sandbox cgroup ${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
    let removed = false;
    const memory = paths.find(({ hierarchy }) => hierarchy.controllers.includes("memory"))!;
    return {
      procsFiles: paths.map(({ path }) => join(path, "cgroup.procs")),
      kill: () => paths.forEach(({ hierarchy, path }) => killGroup(hierarchy, path)),
      remove: async () => {
        if (removed) return;
        removed = true;
        for (const { hierarchy, path } of paths) await removeGroup(hierarchy, path);
      },
      oomKilled: () =>
        memory.hierarchy.version === 2
          ? /^oom_kill [1-9]/m.test(readOptional(join(memory.path, "memory.events")))
          : /^oom_kill [1-9]/m.test(readOptional(join(memory.path, "memory.oom_control"))),
      memoryBytes: () => {
        const usage = readOptional(join(memory.path, memory.hierarchy.version === 2 ? "memory.current" : "memory.usage_in_bytes")).trim();
        return /^\d+$/.test(usage) ? Number(usage) : null;
      },
    };
  }
}

function applyLimits(hierarchy: Hierarchy, path: string, limits: Limits): void {
  const write = (file: string, value: string | number) => writeFileSync(join(path, file), String(value));
  const has = (controller: Controller) => hierarchy.controllers.includes(controller);
  if (hierarchy.version === 2) {
    if (has("memory")) {
      write("memory.max", limits.memoryBytes);
      if (existsSync(join(path, "memory.swap.max"))) write("memory.swap.max", 0);
    }
    if (has("pids")) write("pids.max", limits.pids);
    if (has("cpu")) write("cpu.weight", limits.cpuWeight);
    return;
  }
  if (has("memory")) {
    write("memory.limit_in_bytes", limits.memoryBytes);
    // Without this the limit could be dodged by swapping.
    if (existsSync(join(path, "memory.memsw.limit_in_bytes"))) write("memory.memsw.limit_in_bytes", limits.memoryBytes);
  }
  if (has("pids")) write("pids.max", limits.pids);
  if (has("cpu")) write("cpu.shares", Math.max(2, Math.round((limits.cpuWeight * 1024) / 100)));
}

/**
 * cgroup v2 only lets a group hand controllers to children when it holds no
 * processes itself; a gateway that is alone in its container's root group
 * moves itself into a leaf first.
 */
function enableControllers(hierarchy: Hierarchy, parent: string): void {
  const rootControl = join(hierarchy.mount, "cgroup.subtree_control");
  const wanted = hierarchy.controllers.map((name) => `+${name}`).join(" ");
  try {
    writeFileSync(rootControl, wanted);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EBUSY") throw error;
    const leaf = join(hierarchy.mount, `${parent}-gateway`);
    mkdirSync(leaf, { recursive: true });
    for (const pid of readOptional(join(hierarchy.mount, "cgroup.procs")).split("\n").filter(Boolean)) {
      try {
        writeFileSync(join(leaf, "cgroup.procs"), pid);
      } catch {
        // Kernel threads cannot move; they do not block subtree_control.
      }
    }
    writeFileSync(rootControl, wanted);
  }
}

function killGroup(hierarchy: Hierarchy, path: string): void {
  if (hierarchy.version === 2 && existsSync(join(path, "cgroup.kill"))) {
    try {
      writeFileSync(join(path, "cgroup.kill"), "1");
      return;
    } catch {
      // Fall through to killing each process.
    }
  }
  for (const pid of readOptional(join(path, "cgroup.procs")).split("\n").filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

async function removeGroup(hierarchy: Hierarchy, path: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    killGroup(hierarchy, path);
    try {
      rmdirSync(path);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (code !== "EBUSY") throw error;
      await Bun.sleep(5);
    }
  }
  throw new Error(`cgroup ${path} still has processes after SIGKILL`);
}
