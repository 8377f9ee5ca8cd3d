/**
 * Guard for tests that touch network configuration: they must run inside the
 * network namespace scripts/test.ts creates (`unshare --net`), never in the
 * host's. scripts/test.ts passes the host's namespace in GIG_TEST_HOST_NETNS;
 * this throws unless ours is a different one.
 */
import { readlinkSync } from "node:fs";

export function assertIsolatedNetns(): void {
  const host = process.env.GIG_TEST_HOST_NETNS;
  if (!host || readlinkSync("/proc/self/ns/net") === host) {
    throw new Error("sandbox tests must run in their own network namespace: use `make test` (scripts/test.ts runs them under unshare --net)");
  }
}

/** Runs a command (ip, nft, nsenter) and returns its stdout; a failure throws with its stderr. */
export function run(command: string[]): string {
  const result = Bun.spawnSync(command, { stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`${command.join(" ")}: ${result.stderr.toString()}`);
  return result.stdout.toString();
}
