/**
 * How much memory a backend uses now, for status pages. A sandbox is measured
 * by its cgroup (see cgroup.ts); a plain process by the resident memory of it
 * and every descendant, read from /proc.
 */
import { readdirSync, readFileSync } from "node:fs";

const KIB = 1024;

/** Summed VmRSS of `pid` and all its descendants, in bytes; null if `pid` cannot be read (gone, or /proc hidden). */
export function processTreeRssBytes(pid: number): number | null {
  const own = residentBytes(pid);
  if (own === null) return null;
  const children = childrenByParent();
  let total = own;
  const pending = [...(children.get(pid) ?? [])];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    // A process that exited since the scan counts as nothing.
    total += residentBytes(next) ?? 0;
    pending.push(...(children.get(next) ?? []));
  }
  return total;
}

function residentBytes(pid: number): number | null {
  const status = readOptional(`/proc/${pid}/status`);
  if (status === undefined) return null;
  // Kernel threads and zombies have no VmRSS line: they hold no user memory.
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) * KIB : 0;
}

/** Every live process's children, from the parent pid in /proc/<pid>/stat. */
function childrenByParent(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readOptional(`/proc/${entry}/stat`);
    // The command name (field 2) may hold spaces and parentheses; the fields after its last ")" are fixed.
    const parent = stat === undefined ? NaN : Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (!Number.isInteger(parent)) continue;
    const siblings = children.get(parent);
    if (siblings) siblings.push(Number(entry));
    else children.set(parent, [Number(entry)]);
  }
  return children;
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
