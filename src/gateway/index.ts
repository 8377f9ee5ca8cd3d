/** The MCP gateway: profile endpoints over streamable HTTP, aggregating sandboxed backends. */
import { Gateway, type GatewayOptions } from "./gateway.ts";
import { createHttpApp } from "./http.ts";

export { Gateway, type GatewayOptions } from "./gateway.ts";
export { createHttpApp } from "./http.ts";

export interface RunningGateway {
  gateway: Gateway;
  /** Base URL the server listens on, e.g. http://127.0.0.1:8080 */
  url: string;
  stop(): Promise<void>;
}

/** Starts the gateway and its HTTP server on the configured listen address. */
export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const gateway = new Gateway(options);
  await gateway.start();
  const app = createHttpApp(gateway, { config: options.config, version: options.version, api: options.api });
  const { host, port } = options.config.listen;
  app.listen({ hostname: host === "" ? "0.0.0.0" : host, port });
  const server = app.server!;
  const urlHost = server.hostname === "0.0.0.0" || server.hostname === "" ? "127.0.0.1" : server.hostname!.includes(":") ? `[${server.hostname}]` : server.hostname;
  return {
    gateway,
    url: `http://${urlHost}:${server.port}`,
    stop: async () => {
      await app.stop(true);
      await gateway.stop();
    },
  };
}
