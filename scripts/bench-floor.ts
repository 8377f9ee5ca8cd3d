/**
 * The floor of scripts/bench-peers.ts: the bundled echo server's tools served
 * in-process by the MCP SDK's own streamable HTTP transport (no gateway, no
 * stdio hop), one SDK Server per session as the SDK documents. A process of
 * its own, so its RSS is measured like a gateway's.
 *
 * With --forward COMMAND…, the reference: the same transport, with each
 * session's tools/list and tools/call forwarded to one stdio server started
 * from COMMAND, through the SDK's client. Nothing else (no token, no audit,
 * no sandbox): what the process hop alone costs.
 *
 * Usage: bun scripts/bench-floor.ts <port> [--forward COMMAND…] (listens on 127.0.0.1 only).
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { CallToolRequestSchema, CallToolResultSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { BUNDLED_SERVERS } from "../src/servers/index.ts";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error("usage: bun scripts/bench-floor.ts <port> [--forward COMMAND…]");
const forward = process.argv[3] === "--forward" ? process.argv.slice(4) : undefined;

const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();

async function stdioClient(argv: string[]): Promise<Client> {
  const client = new Client({ name: "bench-forward", version: "1" });
  await client.connect(new StdioClientTransport({ command: argv[0]!, args: argv.slice(1) }));
  return client;
}

const upstream = forward && (await stdioClient(forward));

function forwardingServer(client: Client): Server {
  const server = new Server({ name: "bench-forward", version: "1" }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, (request) => client.listTools(request.params));
  server.setRequestHandler(CallToolRequestSchema, (request) => client.request({ method: "tools/call", params: request.params }, CallToolResultSchema));
  return server;
}

async function openSession(request: Request): Promise<Response> {
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: () => crypto.randomUUID(),
    onsessioninitialized: (id) => void sessions.set(id, transport),
    onsessionclosed: (id) => void sessions.delete(id),
  });
  await (upstream ? forwardingServer(upstream) : BUNDLED_SERVERS.echo!.create("bench-floor")).connect(transport);
  return transport.handleRequest(request);
}

Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(request) {
    const id = request.headers.get("mcp-session-id");
    if (id === null) return request.method === "POST" ? openSession(request) : new Response("POST an initialize request first", { status: 400 });
    return sessions.get(id)?.handleRequest(request) ?? new Response("unknown session", { status: 404 });
  },
});
