/**
 * Picks and wires the backend runner from GIG_SANDBOX: the bubblewrap
 * sandbox with its network manager, or (development only) plain processes.
 */
import { dirname } from "node:path";
import type { Config } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { createNetManager } from "../netmgr/index.ts";
import { createPlainRunner, createSandboxRunner, type Runner } from "../sandbox/index.ts";

export const SANDBOX_OFF_WARNING = "GIG_SANDBOX=off: backends run as plain processes with the gateway's privileges. Use this for development only.";

/**
 * `selfCommand` runs this gigmcp again (for the bundled servers); its files
 * are what a sandbox must see of the gateway: the executable, or from source
 * the runtime and the source tree.
 */
export async function createRunner(config: Config, log: Logger, selfCommand: string[]): Promise<Runner> {
  if (config.sandbox === "off") {
    log.warn(SANDBOX_OFF_WARNING);
    console.error(`\n  WARNING: ${SANDBOX_OFF_WARNING}\n`);
    return createPlainRunner();
  }
  const networks = createNetManager({ pool: config.subnetPool, proxyPort: config.proxyPort, log: log.child({ component: "netmgr" }) });
  await networks.start();
  const [executable, script] = selfCommand;
  const selfPaths = script ? [executable!, dirname(dirname(script))] : [executable!];
  try {
    const runner = await createSandboxRunner({ config, networks, log: log.child({ component: "sandbox" }), selfPaths });
    return {
      ...runner,
      async close() {
        await runner.close?.();
        await networks.stop();
      },
    };
  } catch (error) {
    await networks.stop();
    throw error;
  }
}
