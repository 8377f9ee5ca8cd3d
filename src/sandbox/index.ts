/** How backends run: the bubblewrap sandbox runner, and the plain runner for development. */
export type { LaunchSpec, Runner, RunningProcess } from "./types.ts";
export { createPlainRunner } from "./plain-runner.ts";
export { createSandboxRunner, type NetworkLease, type SandboxNetworks, type SandboxRunnerOptions } from "./sandbox-runner.ts";
export { bwrapArgs, SANDBOX_HOME, SANDBOX_UID, type BwrapPlan } from "./bwrap.ts";
export { processTreeRssBytes } from "./memory.ts";
