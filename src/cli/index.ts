/** The gigmcp command line: one executable, subcommands for every component. */
import { runCommand, type Command, type CommandGroup } from "./command.ts";
import { dbCommands } from "./db.ts";
import { profileCommands, serverCommands, tokenCommands, userCommands } from "./manage.ts";
import { mcpCommand } from "./mcp.ts";
import { connectCommand, connectionCommands, oauthAppCommands } from "./oauth.ts";
import { registryCommands } from "./registry.ts";
import { auditCommands, credentialCommands, vaultCommands } from "./secrets.ts";
import { serveCommand } from "./serve.ts";
import { VERSION } from "./self.ts";

const GROUPS: CommandGroup[] = [
  profileCommands,
  tokenCommands,
  serverCommands,
  credentialCommands,
  connectionCommands,
  oauthAppCommands,
  userCommands,
  vaultCommands,
  auditCommands,
  registryCommands,
  dbCommands,
];
const SINGLE: Command[] = [serveCommand, mcpCommand, connectCommand];

function overview(): string {
  const lines = [
    `gigmcp ${VERSION}: a security-first gateway for the Model Context Protocol`,
    "",
    "Usage: gigmcp COMMAND [ARGS…]   (gigmcp COMMAND --help for details)",
    "",
    "Commands:",
    ...SINGLE.map((command) => `  ${command.name.padEnd(24)}${command.summary}`),
    ...GROUPS.flatMap((group) => group.commands.map((command) => `  ${command.name.padEnd(24)}${command.summary}`)),
    "",
    "Configuration comes from GIG_* environment variables (see README).",
  ];
  return lines.join("\n");
}

/** Runs the command named by argv; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [first, second, ...rest] = argv;
  if (first === undefined || first === "help" || first === "--help" || first === "-h") {
    console.log(overview());
    return first === undefined ? 2 : 0;
  }
  if (first === "version" || first === "--version") {
    console.log(VERSION);
    return 0;
  }
  const single = SINGLE.find((command) => command.name === first);
  if (single) return runCommand(single, argv.slice(1));
  const group = GROUPS.find((candidate) => candidate.name === first);
  if (!group) {
    console.error(`gigmcp: unknown command ${first}\n\n${overview()}`);
    return 2;
  }
  const command = group.commands.find((candidate) => candidate.name === `${first} ${second}`);
  if (!command) {
    const known = group.commands.map((candidate) => `  ${candidate.name.padEnd(24)}${candidate.summary}`).join("\n");
    const wantsHelp = second === undefined || second === "--help" || second === "-h";
    (wantsHelp ? console.log : console.error)(`${wantsHelp ? "" : `gigmcp: unknown command ${first} ${second}\n\n`}gigmcp ${first}: ${group.summary}\n\n${known}`);
    return wantsHelp && second !== undefined ? 0 : 2;
  }
  return runCommand(command, rest);
}

