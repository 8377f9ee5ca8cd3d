/** `gigmcp mcp NAME`: runs a bundled MCP server over stdio (how the gateway starts builtin backends). */
import { BUNDLED_SERVERS, serveStdio, ServerConfigError } from "../servers/index.ts";
import { requirePositionals, runCommand, UsageError, type Command } from "./command.ts";
import { VERSION } from "./self.ts";

export const mcpCommand: Command = {
  name: "mcp",
  summary: "Run a bundled MCP server on stdin/stdout.",
  usage: `mcp ${Object.keys(BUNDLED_SERVERS).join("|")}`,
  details: `Bundled servers:\n${Object.entries(BUNDLED_SERVERS)
    .map(([name, server]) => `  ${name.padEnd(10)}${server.description}`)
    .join("\n")}`,
  run: async (invocation) => {
    const [name] = requirePositionals(invocation, ["SERVER"]);
    const bundled = BUNDLED_SERVERS[name!];
    if (!bundled) throw new UsageError(`no bundled server named ${name}`);
    let server;
    try {
      server = bundled.create(VERSION);
    } catch (error) {
      // A misconfigured server refuses to start: the message names the variable to fix, and the gateway logs stderr.
      if (!(error instanceof ServerConfigError)) throw error;
      console.error(`gigmcp mcp ${name}: ${error.message}`);
      return 1;
    }
    await serveStdio(server);
  },
};

/** Entry for `gigmcp mcp …` alone, so a bundled server does not load the gateway. */
export function main(argv: string[]): Promise<number> {
  return runCommand(mcpCommand, argv.slice(1));
}
