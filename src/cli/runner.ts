/**
 * Picks and wires how backends run, from GIG_SANDBOX: the bubblewrap sandbox
 * with its network manager and egress proxy, or (development only) plain
 * processes. Either way credentials reach backends the same way: sealed
 * servers get placeholders, entrusted ones their secrets.
 */
import { dirname } from "node:path";
import type { Config } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { createNetManager } from "../netmgr/index.ts";
import { createPlainRunner, createSandboxRunner, type Runner, type SandboxNetworks } from "../sandbox/index.ts";
import type { Server, Store } from "../store/index.ts";
import type { Supervisor } from "../supervisor/index.ts";
import type { Vault } from "../vault/index.ts";
import { startEgress, type Egress, type EgressOptions } from "./egress.ts";

export const SANDBOX_OFF_WARNING = "GIG_SANDBOX=off: backends run as plain processes with the gateway's privileges. Use this for development only.";

export interface Backends {
  /** Its close() also stops the egress proxy and releases the network. */
  runner: Runner;
  credentialEnvironment(server: Server, tenantId: string): Promise<Record<string, string>>;
  /** Tenants' OAuth connections (the egress side refreshes and injects their tokens). */
  connections: Egress["connections"];
  credentialProblem: Egress["credentialProblem"];
  vault: Vault;
  /** Readiness checks for /readyz: the egress proxy runs. */
  readiness: Record<string, () => boolean>;
}

export interface BackendsOptions {
  config: Config;
  store: Store;
  log: Logger;
  /**
   * Runs this gigmcp again (for the bundled servers); its files are what a
   * sandbox must see of the gateway: the executable, or from source the
   * runtime and the source tree.
   */
  selfCommand: string[];
  /** For tests: how the proxy resolves their names and which upstream CA it trusts. */
  egress?: Pick<EgressOptions, "resolve" | "upstreamCaCertificates">;
  /** The requests a backend is serving now (the gateway's supervisor knows), for the egress audit. */
  requestsOf?: EgressOptions["requestsOf"];
}

export async function createBackends(options: BackendsOptions): Promise<Backends> {
  const { config, store, log, selfCommand } = options;
  if (config.sandbox === "off") {
    log.warn(SANDBOX_OFF_WARNING);
    const egress = await startEgress({ config, store, log, identify: () => undefined });
    const plain = createPlainRunner();
    return { runner: { ...plain, close: () => egress.stop() }, ...credentialsOf(egress), readiness: { egress: egress.running } };
  }

  const network = createNetManager({ pool: config.subnetPool, proxyPort: config.proxyPort, log: log.child({ component: "netmgr" }) });
  await network.start();
  const cleanups: (() => Promise<void>)[] = [() => network.stop()];
  const close = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => log.error("shutdown step failed", { error }));
  };
  try {
    const egress = await startEgress({ config, store, log, identify: (sourceIp) => network.identify(sourceIp), requestsOf: options.requestsOf, ...options.egress });
    cleanups.push(() => egress.stop());
    // The proxy listens on each sandbox's host-side address only while that sandbox exists.
    const networks: SandboxNetworks = {
      async reserve(identity) {
        const lease = await network.reserve(identity);
        return {
          ...lease,
          async attach(pid) {
            await lease.attach(pid);
            await egress.proxy.listen(lease.hostAddress, config.proxyPort);
          },
          async release() {
            await egress.proxy.unlisten(lease.hostAddress);
            await lease.release();
          },
        };
      },
    };
    const [executable, script] = selfCommand;
    const selfPaths = script ? [executable!, dirname(dirname(script))] : [executable!];
    const sandbox = await createSandboxRunner({
      config,
      networks,
      log: log.child({ component: "sandbox" }),
      selfPaths,
      caCertificatePem: egress.caCertificatePem,
    });
    cleanups.push(async () => sandbox.close?.());
    return { runner: { ...sandbox, close }, ...credentialsOf(egress), readiness: { egress: egress.running } };
  } catch (error) {
    await close();
    throw error;
  }
}

function credentialsOf(egress: Egress): Pick<Backends, "credentialEnvironment" | "connections" | "credentialProblem" | "vault"> {
  return { credentialEnvironment: egress.credentialEnvironment, connections: egress.connections, credentialProblem: egress.credentialProblem, vault: egress.vault };
}

/**
 * Entrusted servers hold a connection's access token in their environment: when it
 * changes (refresh, reconnect, revoke) their running sandboxes of that tenant stop,
 * and the next call starts them with the current token.
 */
export function restartOnRotation(connections: Egress["connections"], store: Store, supervisor: Pick<Supervisor, "find" | "stop">, log: Logger): void {
  connections.onRotate((vendor, tenantId) => {
    void (async () => {
      for (const server of await store.servers.list()) {
        if (server.tier !== "entrusted" || !server.credentials.some((spec) => spec.vendor === vendor)) continue;
        const backend = supervisor.find(server.id, tenantId);
        if (backend) await supervisor.stop(backend);
      }
    })().catch((error: unknown) => log.error("could not restart servers after an OAuth token changed", { vendor, error }));
  });
}
