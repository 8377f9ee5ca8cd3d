/**
 * A second egress proxy on loopback for core tests (no sandbox there): 127.0.0.2 plays the echo
 * sandbox of the gateway's admin, so a CONNECT from it is decided as that sandbox's egress, with
 * the request ids of echo's calls in flight.
 */
import { connect as connectTcp } from "node:net";
import { startEgress } from "../../src/cli/egress.ts";
import { loadConfig } from "../../src/config/index.ts";
import { createLogger } from "../../src/log/index.ts";
import type { TestGateway } from "./gateway.ts";

export async function startEchoEgress(gw: TestGateway) {
  const echo = await gw.store.servers.get("echo");
  const egress = await startEgress({
    config: loadConfig({ GIG_DATA_DIR: gw.dataDir, GIG_SANDBOX: "off", GIG_LOG_LEVEL: "error" }),
    store: gw.store,
    log: createLogger("error"),
    identify: (sourceIp) => (sourceIp.endsWith("127.0.0.2") ? { serverId: echo.id, serverName: "echo", tenantId: gw.admin.id } : undefined),
    requestsOf: (serverId, tenantId) => gw.gateway.supervisor.find(serverId, tenantId)?.requests ?? [],
  });
  const port = await egress.proxy.listen("127.0.0.1", 0);
  /** The proxy's status line for a CONNECT to `host` from the stand-in sandbox. */
  const connectThroughProxy = (host: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connectTcp({ host: "127.0.0.1", port, localAddress: "127.0.0.2" }, () => socket.write(`CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`));
      socket.once("data", (chunk) => {
        resolve(chunk.toString().split("\r\n")[0]!);
        socket.destroy();
      });
      socket.once("error", reject);
    });
  return { egress, connectThroughProxy };
}
