/**
 * A tiny command framework on node:util parseArgs: each command declares its
 * usage, options and handler; `--help` and error handling are shared.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ConfigError } from "../config/index.ts";
import { OAuthError } from "../oauth/index.ts";
import { ConflictError, NotFoundError } from "../store/index.ts";

export type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Invocation {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
  /** Arguments after a bare `--`, passed through untouched. */
  rest: string[];
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options?: Options;
  /** Extra help text after the options. */
  details?: string;
  run(invocation: Invocation): Promise<number | void>;
}

export interface CommandGroup {
  name: string;
  summary: string;
  commands: Command[];
}

/** A mistake in how a command was called: printed with its usage, exit 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

const HELP: Options = { help: { type: "boolean", short: "h" } };

export function formatHelp(command: Command): string {
  const options = Object.entries({ ...command.options, ...HELP }).map(([name, option]) => {
    const flag = `${option.short ? `-${option.short}, ` : "    "}--${name}${option.type === "string" ? " VALUE" : ""}`;
    return `  ${flag.padEnd(28)}${OPTION_HELP[name] ?? ""}`;
  });
  return [`Usage: gigmcp ${command.usage}`, "", command.summary, "", "Options:", ...options, ...(command.details ? ["", command.details] : [])].join("\n");
}

/** Descriptions of options, shared across commands so the same flag reads the same everywhere. */
export const OPTION_HELP: Record<string, string> = {
  help: "show this help",
  json: "machine-readable output",
  tenant: "act for the user with this email (default: the first admin)",
  "no-prefix": "expose tools under their own names, not <server>_<tool>",
  tools: "comma-separated tool names the profile exposes (default: all)",
  label: "a name to recognise the token by",
  env: "environment variable K=V for the server (repeatable)",
  egress: "host the server may reach through the egress proxy (repeatable)",
  ro: "extra path the server may read (repeatable)",
  timeout: "seconds the server has to answer one request",
  dev: "development mode: create the admin, the default profile and a fresh token",
  admin: "give the user the admin role",
  memory: "memory limit, e.g. 256M or 2G",
  pids: "most processes and threads",
  cpu: "relative CPU weight (100 is an even share)",
  tier: "sealed (default: the proxy injects credentials) or entrusted (the server gets them)",
  credential: "a credential the server uses: id=ID,type=TYPE,… (repeatable; see below)",
  type: "api_key, basic or oauth2 (default: the type the server declares)",
  lines: "how many of the latest events to print (default 20, at most 1000)",
  follow: "keep printing new events as they are recorded",
  yes: "consent to the grants shown (tier, egress hosts, credentials) without asking",
  denylist: "extra file of denied domains, one per line (repeatable)",
  image: "pull and run the server's image even when the toolspec engine could serve it",
  "base-url": "the tenant's own host for the server's API, e.g. https://acme.zendesk.com",
  from: "the database to copy from: sqlite:PATH or postgres://…",
  to: "the database to copy into (new or empty): sqlite:PATH or postgres://…",
  "client-id": "the client id the vendor issued for the app",
  public: "a public client: no client secret on stdin (PKCE only)",
  "authorize-url": "the vendor's authorization endpoint (default: the built-in preset)",
  "token-url": "the vendor's token endpoint (default: the built-in preset)",
  scopes: "space-separated scopes asked for besides the servers' own",
  pkce: "true or false: send a PKCE challenge (default: the preset's, else true)",
};

/** Parses argv for a command and runs it; returns the process exit code. */
export async function runCommand(command: Command, argv: string[]): Promise<number> {
  const separator = argv.indexOf("--");
  const own = separator < 0 ? argv : argv.slice(0, separator);
  const rest = separator < 0 ? [] : argv.slice(separator + 1);
  try {
    const { values, positionals } = parseArgs({
      args: own,
      options: { ...command.options, ...HELP },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      console.log(formatHelp(command));
      return 0;
    }
    return (await command.run({ values, positionals, rest })) ?? 0;
  } catch (error) {
    return reportError(error, command);
  }
}

function reportError(error: unknown, command: Command): number {
  if (error instanceof UsageError || (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS"))) {
    console.error(`gigmcp ${command.name}: ${error.message}\n\n${formatHelp(command)}`);
    return 2;
  }
  if (error instanceof ConfigError) {
    console.error(`gigmcp: ${error.message}`);
    return 2;
  }
  if (error instanceof NotFoundError || error instanceof ConflictError || error instanceof OAuthError) {
    console.error(`gigmcp ${command.name}: ${error.message}`);
    return 1;
  }
  throw error;
}

export function requirePositionals(invocation: Invocation, names: string[]): string[] {
  if (invocation.positionals.length !== names.length) {
    throw new UsageError(`expected ${names.join(" ")}, got ${invocation.positionals.length ? invocation.positionals.join(" ") : "nothing"}`);
  }
  return invocation.positionals;
}

/** Prints `value` as JSON with --json, else the human rendering. */
export function output(invocation: Invocation, value: unknown, human: () => string): void {
  console.log(invocation.values.json ? JSON.stringify(value, null, 2) : human());
}

/** Left-aligned columns, for lists. */
export function table(header: string[], rows: string[][]): string {
  if (rows.length === 0) return "(none)";
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
