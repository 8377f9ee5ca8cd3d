/**
 * The floor of scripts/bench-peers.ts: the bundled echo server's tools served
 * in-process by the MCP SDK's own streamable HTTP transport (no gateway, no
 * stdio hop), one SDK Server per session as the SDK documents. A process of
 * its own, so its RSS is measured like a gateway's.
 *
 * Usage: bun scripts/bench-floor.ts <port> (listens on 127.0.0.1 only).
 */
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { BUNDLED_SERVERS } from "../src/servers/index.ts";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error("usage: bun scripts/bench-floor.ts <port>");

const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();

async function openSession(request: Request): Promise<Response> {
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: () => crypto.randomUUID(),
    onsessioninitialized: (id) => void sessions.set(id, transport),
    onsessionclosed: (id) => void sessions.delete(id),
  });
  await BUNDLED_SERVERS.echo!.create("bench-floor").connect(transport);
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
