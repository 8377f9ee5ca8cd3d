/** `gigmcp serve`: runs the gateway until SIGINT/SIGTERM. */
import { mkdirSync } from "node:fs";
import { ConfigError, loadConfig, type Config } from "../config/index.ts";
import { startGateway } from "../gateway/index.ts";
import { createLogger, type Logger } from "../log/index.ts";
import { openStore } from "../store/index.ts";
import { createPlainRunner, type Runner } from "../supervisor/index.ts";
import type { Command } from "./command.ts";
import { bootstrapDevelopment, connectionHelp } from "./dev.ts";
import { selfCommand, VERSION } from "./self.ts";

function chooseRunner(config: Config, log: Logger): Runner {
  if (config.sandbox === "off") {
    const warning = "GIG_SANDBOX=off: backends run as plain processes with the gateway's privileges. Use this for development only.";
    log.warn(warning);
    console.error(`\n  WARNING: ${warning}\n`);
    return createPlainRunner();
  }
  throw new ConfigError(
    "GIG_SANDBOX=bwrap: the bubblewrap sandbox runner is not part of this build yet; set GIG_SANDBOX=off to run backends unsandboxed (development only)",
  );
}

export const serveCommand: Command = {
  name: "serve",
  summary: "Run the gateway: MCP endpoints on GIG_LISTEN, configuration from GIG_* variables.",
  usage: "serve [--dev]",
  options: { dev: { type: "boolean" } },
  details: "With --dev (what `make run` uses) the first admin, the bundled echo and fetch servers and a\n`default` profile are created if missing, and a fresh token for it is printed.",
  run: async (invocation) => {
    const config = loadConfig();
    const log = createLogger(config.logLevel);
    const runner = chooseRunner(config, log);
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const store = openStore(config.dbUrl);
    const development = invocation.values.dev ? await bootstrapDevelopment(store) : undefined;

    let running;
    try {
      running = await startGateway({ config, store, runner, log, version: VERSION, selfCommand: selfCommand() });
    } catch (error) {
      store.close();
      const reason = error instanceof Error ? error.message : String(error);
      console.error(`gigmcp serve: cannot listen on ${config.listen.host || "*"}:${config.listen.port}: ${reason} (set GIG_LISTEN)`);
      return 1;
    }
    const base = config.publicUrl?.href.replace(/\/$/, "") ?? running.url;
    log.info("gateway listening", { url: running.url, version: VERSION, runner: runner.name });
    if (development) console.log(connectionHelp(base, development.profile, development.token));

    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    log.info("shutting down");
    await running.stop();
    store.close();
  },
};
