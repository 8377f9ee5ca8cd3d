/**
 * Starts a backend as a plain child process with a cleared environment. No
 * isolation beyond that: this runner exists for development (GIG_SANDBOX=off).
 */
import { closeSync } from "node:fs";
import { openVerifiedEntrypoint, pulledEntrypoint } from "./entrypoint.ts";
import { processTreeRssBytes } from "./memory.ts";
import type { LaunchSpec, Runner, RunningProcess } from "./types.ts";

export function createPlainRunner(): Runner {
  return {
    name: "plain",
    async start(spec: LaunchSpec): Promise<RunningProcess> {
      if (pulledEntrypoint(spec.server)) closeSync(openVerifiedEntrypoint(spec.server, spec.argv[0]!));
      const child = Bun.spawn(spec.argv, {
        env: spec.env,
        stdin: "pipe",
        stdout: "pipe",
        stderr: "pipe",
      });
      return {
        pid: child.pid,
        stdin: child.stdin,
        stdout: child.stdout,
        stderr: child.stderr,
        exited: child.exited.then(() => child.exitCode),
        kill: (signal) => child.kill(signal),
        memoryBytes: () => processTreeRssBytes(child.pid),
      };
    },
  };
}
