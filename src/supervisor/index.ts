/** Backend lifecycle behind a Runner: the gateway asks for (server, tenant) and gets a live MCP client. */
export type { LaunchSpec, Runner, RunningProcess } from "../sandbox/index.ts";
export { Backend, type ListKind, type ListItems } from "./backend.ts";
export { Supervisor, type BackendHooks, type SupervisorOptions } from "./supervisor.ts";
export { ProcessTransport } from "./process-transport.ts";
