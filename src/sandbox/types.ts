import type { Server } from "../store/index.ts";

/** What a Runner needs to start one backend for one tenant. */
export interface LaunchSpec {
  server: Server;
  tenantId: string;
  /** Absolute path of the executable and its arguments. */
  argv: string[];
  /** The complete environment of the backend: nothing is inherited. */
  env: Record<string, string>;
}

/** A started backend process speaking MCP on stdin/stdout. */
export interface RunningProcess {
  pid: number;
  stdin: { write(data: string): unknown; flush(): unknown; end(): unknown };
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  /** Resolves with the exit code (or signal-terminated null) once the process and its resources are gone. */
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
  /** Memory the backend uses now, in bytes (its sandbox's cgroup, else its process tree); null when unreadable. */
  memoryBytes(): number | null;
}

/** Starts backends; the plain runner and the sandbox runner implement it. */
export interface Runner {
  readonly name: string;
  start(spec: LaunchSpec): Promise<RunningProcess>;
  /** Releases what the runner holds beyond its processes (network, cgroups, files). */
  close?(): Promise<void>;
}
