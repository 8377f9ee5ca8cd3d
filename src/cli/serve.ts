/** `gigmcp serve`: runs the gateway until SIGINT/SIGTERM. */
import { mkdirSync } from "node:fs";
import { apiAuthOf, createApi, oidcLogin } from "../api/index.ts";
import { createAuth } from "../auth/index.ts";
import { loadConfig } from "../config/index.ts";
import { startGateway, type RunningGateway } from "../gateway/index.ts";
import { createLogger } from "../log/index.ts";
import { openStore } from "../store/index.ts";
import { startTracing, stopTracing } from "../tracing/index.ts";
import type { Command } from "./command.ts";
import { bootstrapDevelopment, connectionHelp } from "./dev.ts";
import { createBackends, restartOnRotation, SANDBOX_OFF_WARNING } from "./runner.ts";
import { selfCommand, VERSION } from "./self.ts";

export const serveCommand: Command = {
  name: "serve",
  summary: "Run the gateway: MCP endpoints on GIG_LISTEN, configuration from GIG_* variables.",
  usage: "serve [--dev]",
  options: { dev: { type: "boolean" } },
  details: "With --dev (what `make run` uses) the first admin, the bundled echo and fetch servers and a\n`default` profile are created if missing, and a fresh token for it is printed.",
  run: async (invocation) => {
    const config = loadConfig();
    const log = createLogger(config.logLevel);
    startTracing(config.otel, VERSION, log);
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const store = await openStore(config.dbUrl, { auditThread: true });
    let running: RunningGateway | undefined;
    let backends;
    try {
      backends = await createBackends({
        config,
        store,
        log,
        selfCommand: selfCommand(),
        requestsOf: (serverId, tenantId) => running?.gateway.supervisor.find(serverId, tenantId)?.requests ?? [],
      });
    } catch (error) {
      store.close();
      console.error(`gigmcp serve: ${error instanceof Error ? error.message : String(error)}`);
      return 1;
    }
    const { runner, credentialEnvironment, credentialProblem, connections, vault, readiness } = backends;
    if (config.sandbox === "off") console.error(`\n  WARNING: ${SANDBOX_OFF_WARNING}\n`);
    const development = invocation.values.dev ? await bootstrapDevelopment(store) : undefined;

    try {
      const api = createApi({
        config,
        store,
        vault,
        version: VERSION,
        auth: apiAuthOf(createAuth({ store, log: log.child({ component: "auth" }) })),
        secureCookies: config.publicUrl?.protocol === "https:",
        oidc: oidcLogin(config),
        connections,
        backends: {
          running: () => running?.gateway.backendStatus() ?? [],
          tools: (server, tenantId) => (running ? running.gateway.serverTools(server, tenantId) : Promise.reject(new Error("the gateway is starting"))),
        },
      });
      running = await startGateway({ config, store, runner, log, version: VERSION, selfCommand: selfCommand(), credentialEnvironment, credentialProblem, api, readiness });
      restartOnRotation(connections, store, running.gateway.supervisor, log);
    } catch (error) {
      await runner.close?.();
      store.close();
      const reason = error instanceof Error ? error.message : String(error);
      console.error(`gigmcp serve: cannot listen on ${config.listen.host || "*"}:${config.listen.port}: ${reason} (set GIG_LISTEN)`);
      return 1;
    }
    const base = config.publicUrl?.href.replace(/\/$/, "") ?? running.url;
    log.info("gateway listening", { url: running.url, version: VERSION, runner: runner.name });
    if (development) console.log(connectionHelp(base, development.profile, development.token, config.dashboard ? { admin: development.admin, dataDir: config.dataDir } : undefined));

    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    log.info("shutting down");
    await running.stop();
    await stopTracing();
    store.close();
  },
};

