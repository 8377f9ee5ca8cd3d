/**
 * A small MCP tool server on the SDK's low-level Server: every tool declares
 * its input as a valibot schema, which is both the JSON Schema clients see
 * and the validator each call goes through. Bundled servers and the toolspec
 * engine share it.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type CallToolResult,
  type ServerNotification,
  type ServerRequest,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { toJsonSchema } from "@valibot/to-json-schema";
import * as v from "valibot";

export type ToolContext = RequestHandlerExtra<ServerRequest, ServerNotification>;

export interface ToolDefinition<S extends v.GenericSchema = v.GenericSchema> {
  name: string;
  description: string;
  input: S;
  annotations?: Tool["annotations"];
  run(input: v.InferOutput<S>, context: ToolContext): Promise<CallToolResult>;
}

/** Keeps each tool's input type tied to its schema. */
export function defineTool<S extends v.GenericSchema>(tool: ToolDefinition<S>): ToolDefinition {
  return tool as unknown as ToolDefinition;
}

export function textResult(text: string, structuredContent?: Record<string, unknown>): CallToolResult {
  return { content: [{ type: "text", text }], ...(structuredContent && { structuredContent }) };
}

export function toolError(text: string): CallToolResult {
  return { content: [{ type: "text", text }], isError: true };
}

export function createToolServer(info: { name: string; version: string }, tools: ToolDefinition[]): Server {
  const byName = new Map(tools.map((tool) => [tool.name, tool]));
  const listed: Tool[] = tools.map((tool) => ({
    name: tool.name,
    description: tool.description,
    inputSchema: toJsonSchema(tool.input, { errorMode: "ignore" }) as Tool["inputSchema"],
    ...(tool.annotations && { annotations: tool.annotations }),
  }));
  const server = new Server(info, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: listed }));
  server.setRequestHandler(CallToolRequestSchema, async (request, context) => {
    const tool = byName.get(request.params.name);
    if (!tool) throw new McpError(ErrorCode.InvalidParams, `unknown tool ${JSON.stringify(request.params.name)}`);
    const parsed = v.safeParse(tool.input, request.params.arguments ?? {});
    if (!parsed.success) {
      return toolError(`invalid arguments for ${tool.name}: ${describeIssues(parsed.issues)}`);
    }
    return tool.run(parsed.output, context);
  });
  return server;
}

/** "a: expected number, b: required" — the field path and what was wrong, for each issue. */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  return issues
    .map((issue) => {
      const path = v.getDotPath(issue);
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}

/** Serves the tools over stdio until stdin closes (the gateway's first stop signal). */
export async function serveStdio(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    server.onclose = resolve;
    process.stdin.once("end", () => void server.close());
  });
  await server.connect(new StdioServerTransport());
  await closed;
}
