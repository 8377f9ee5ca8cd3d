/** MCP servers bundled in the gigmcp executable, run as `gigmcp mcp <name>` over stdio. */
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { createEchoServer } from "./echo.ts";
import { createFetchServer } from "./fetch.ts";
import { createToolspecServer } from "./toolspec.ts";

export const BUNDLED_SERVERS: Record<string, { description: string; create(version: string): Server }> = {
  echo: { description: "echo, add and a slow tool with progress (for trying things out)", create: createEchoServer },
  fetch: { description: "fetch a URL and return its text or markdown", create: createFetchServer },
  toolspec: { description: "serve one registry toolspec as HTTP tools (configured by TOOLSPEC* variables)", create: createToolspecServer },
};

export { ServerConfigError } from "./toolspec.ts";
export { createToolServer, defineTool, describeIssues, serveStdio, textResult, toolError, type ToolDefinition } from "./tool-server.ts";
