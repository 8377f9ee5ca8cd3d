/**
 * The stdio MCP server behind the conformance run: the fixture tools,
 * resources and prompts the official suite's server scenarios call by name
 * (2025-11-25). The gateway sits between the suite and this server, so every
 * scenario exercises the gateway's aggregation, routing and relaying.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ErrorCode,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type CallToolResult,
  type GetPromptResult,
  type ReadResourceResult,
  type ServerNotification,
  type ServerRequest,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";

/** A 1×1 red PNG. */
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/** A 44-byte WAV header with no samples. */
const WAV = Buffer.from("RIFF$\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\x80\x3e\0\0\x02\0\x10\0data\0\0\0\0", "latin1").toString("base64");

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;
type Args = Record<string, unknown>;

interface FixtureTool {
  description: string;
  inputSchema?: Tool["inputSchema"];
  run(args: Args, extra: Extra): Promise<CallToolResult> | CallToolResult;
}

const noArguments: Tool["inputSchema"] = { type: "object", properties: {} };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const textResult = (text: string): CallToolResult => ({ content: [{ type: "text", text }] });

const server = new Server(
  { name: "conformance-fixture", version: "1.0.0" },
  { capabilities: { tools: {}, prompts: {}, resources: { subscribe: true }, logging: {}, completions: {} } },
);

async function elicit(extra: Extra, message: string, requestedSchema: Record<string, unknown>) {
  return extra.sendRequest({ method: "elicitation/create", params: { message, requestedSchema } } as ServerRequest, ElicitResultSchema);
}

const tools: Record<string, FixtureTool> = {
  test_simple_text: { description: "Returns simple text", run: () => textResult("This is a simple text response for testing.") },
  test_image_content: {
    description: "Returns an image",
    run: () => ({ content: [{ type: "image", data: PNG, mimeType: "image/png" }] }),
  },
  test_audio_content: {
    description: "Returns audio",
    run: () => ({ content: [{ type: "audio", data: WAV, mimeType: "audio/wav" }] }),
  },
  test_embedded_resource: {
    description: "Returns an embedded resource",
    run: () => ({
      content: [{ type: "resource", resource: { uri: "test://embedded-resource", mimeType: "text/plain", text: "This is an embedded resource content." } }],
    }),
  },
  test_multiple_content_types: {
    description: "Returns text, image and resource content",
    run: () => ({
      content: [
        { type: "text", text: "Multiple content types test:" },
        { type: "image", data: PNG, mimeType: "image/png" },
        { type: "resource", resource: { uri: "test://mixed-content-resource", mimeType: "application/json", text: '{"test":"data","value":123}' } },
      ],
    }),
  },
  test_tool_with_logging: {
    description: "Logs three messages while it runs",
    async run() {
      for (const [index, data] of ["Tool execution started", "Tool processing data", "Tool execution completed"].entries()) {
        if (index > 0) await sleep(50);
        await server.sendLoggingMessage({ level: "info", data });
      }
      return textResult("Logging test completed");
    },
  },
  test_error_handling: {
    description: "Always fails",
    run: () => ({ isError: true, content: [{ type: "text", text: "This tool intentionally returns an error for testing" }] }),
  },
  test_tool_with_progress: {
    description: "Reports progress 0, 50 and 100 of 100",
    async run(_args, extra) {
      const progressToken = extra._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (progress > 0) await sleep(50);
        if (progressToken !== undefined) {
          await extra.sendNotification({ method: "notifications/progress", params: { progressToken, progress, total: 100 } });
        }
      }
      return textResult("Progress test completed");
    },
  },
  test_sampling: {
    description: "Asks the client's model",
    inputSchema: { type: "object", properties: { prompt: { type: "string" } }, required: ["prompt"] },
    async run(args, extra) {
      const result = await extra.sendRequest(
        {
          method: "sampling/createMessage",
          params: { messages: [{ role: "user", content: { type: "text", text: String(args.prompt) } }], maxTokens: 100 },
        } as ServerRequest,
        CreateMessageResultSchema,
      );
      const content = Array.isArray(result.content) ? result.content[0] : result.content;
      return textResult(`LLM response: ${content?.type === "text" ? content.text : JSON.stringify(content)}`);
    },
  },
  test_elicitation: {
    description: "Asks the user for a username and email",
    inputSchema: { type: "object", properties: { message: { type: "string" } }, required: ["message"] },
    async run(args, extra) {
      const result = await elicit(extra, String(args.message), {
        type: "object",
        properties: {
          username: { type: "string", description: "User's response" },
          email: { type: "string", description: "User's email address" },
        },
        required: ["username", "email"],
      });
      return textResult(`User response: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`);
    },
  },
  test_elicitation_sep1034_defaults: {
    description: "Elicitation whose fields carry defaults",
    async run(_args, extra) {
      const result = await elicit(extra, "Please review the defaults", {
        type: "object",
        properties: {
          name: { type: "string", default: "John Doe" },
          age: { type: "integer", default: 30 },
          score: { type: "number", default: 95.5 },
          status: { type: "string", enum: ["active", "inactive", "pending"], default: "active" },
          verified: { type: "boolean", default: true },
        },
      });
      return textResult(`Elicitation completed: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`);
    },
  },
  test_elicitation_sep1330_enums: {
    description: "Elicitation with every enum form",
    async run(_args, extra) {
      const result = await elicit(extra, "Please choose", {
        type: "object",
        properties: {
          untitledSingle: { type: "string", enum: ["option1", "option2", "option3"] },
          titledSingle: {
            type: "string",
            oneOf: [
              { const: "value1", title: "First Option" },
              { const: "value2", title: "Second Option" },
            ],
          },
          legacyEnum: { type: "string", enum: ["opt1", "opt2", "opt3"], enumNames: ["Option One", "Option Two", "Option Three"] },
          untitledMulti: { type: "array", items: { type: "string", enum: ["option1", "option2", "option3"] } },
          titledMulti: {
            type: "array",
            items: {
              anyOf: [
                { const: "value1", title: "First Choice" },
                { const: "value2", title: "Second Choice" },
              ],
            },
          },
        },
      });
      return textResult(`Elicitation completed: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`);
    },
  },
  json_schema_2020_12_tool: {
    description: "Tool with JSON Schema 2020-12 features",
    inputSchema: {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      $defs: { address: { type: "object", properties: { street: { type: "string" }, city: { type: "string" } } } },
      properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
      additionalProperties: false,
    },
    run: (args) => textResult(JSON.stringify(args)),
  },
  // A stdio backend cannot close the client's HTTP stream, so this answers in place after a pause.
  test_reconnection: {
    description: "Answers after a pause",
    async run() {
      await sleep(100);
      return textResult("Reconnection test completed successfully");
    },
  },
};

const staticResources: Record<string, ReadResourceResult["contents"][number] & { name: string }> = {
  "test://static-text": { name: "static-text", uri: "test://static-text", mimeType: "text/plain", text: "This is the content of the static text resource." },
  "test://static-binary": { name: "static-binary", uri: "test://static-binary", mimeType: "image/png", blob: PNG },
  "test://watched-resource": { name: "watched-resource", uri: "test://watched-resource", mimeType: "text/plain", text: "Watched resource content" },
};
const TEMPLATE = /^test:\/\/template\/([^/]+)\/data$/;

const prompts: Record<string, { description: string; arguments?: { name: string; required: boolean }[]; get(args: Args): GetPromptResult }> = {
  test_simple_prompt: {
    description: "A prompt without arguments",
    get: () => ({ messages: [{ role: "user", content: { type: "text", text: "This is a simple prompt for testing." } }] }),
  },
  test_prompt_with_arguments: {
    description: "A prompt with two arguments",
    arguments: [
      { name: "arg1", required: true },
      { name: "arg2", required: true },
    ],
    get: (args) => ({
      messages: [{ role: "user", content: { type: "text", text: `Prompt with arguments: arg1='${args.arg1}', arg2='${args.arg2}'` } }],
    }),
  },
  test_prompt_with_embedded_resource: {
    description: "A prompt embedding a resource",
    arguments: [{ name: "resourceUri", required: true }],
    get: (args) => ({
      messages: [
        { role: "user", content: { type: "resource", resource: { uri: String(args.resourceUri), mimeType: "text/plain", text: "Embedded resource content for testing." } } },
        { role: "user", content: { type: "text", text: "Please process the embedded resource above." } },
      ],
    }),
  },
  test_prompt_with_image: {
    description: "A prompt with an image",
    get: () => ({
      messages: [
        { role: "user", content: { type: "image", data: PNG, mimeType: "image/png" } },
        { role: "user", content: { type: "text", text: "Please analyze the image above." } },
      ],
    }),
  },
};

function lookup<T>(table: Record<string, T>, name: string, kind: string): T {
  const entry = Object.hasOwn(table, name) ? table[name] : undefined;
  if (!entry) throw new McpError(ErrorCode.InvalidParams, `unknown ${kind}: ${name}`);
  return entry;
}

server.setRequestHandler(ListToolsRequestSchema, () => ({
  tools: Object.entries(tools).map(([name, tool]) => ({ name, description: tool.description, inputSchema: tool.inputSchema ?? noArguments })),
}));
server.setRequestHandler(CallToolRequestSchema, (request, extra) =>
  lookup(tools, request.params.name, "tool").run(request.params.arguments ?? {}, extra),
);

server.setRequestHandler(ListResourcesRequestSchema, () => ({
  resources: Object.values(staticResources).map(({ uri, name, mimeType }) => ({ uri, name, mimeType, description: `The ${name} fixture` })),
}));
server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
  resourceTemplates: [{ uriTemplate: "test://template/{id}/data", name: "template", description: "Data by id", mimeType: "application/json" }],
}));
server.setRequestHandler(ReadResourceRequestSchema, (request) => {
  const { uri } = request.params;
  const id = TEMPLATE.exec(uri)?.[1];
  if (id !== undefined) {
    return { contents: [{ uri, mimeType: "application/json", text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }) }] };
  }
  const { name: _name, ...contents } = lookup(staticResources, uri, "resource");
  return { contents: [contents] };
});
server.setRequestHandler(SubscribeRequestSchema, () => ({}));
server.setRequestHandler(UnsubscribeRequestSchema, () => ({}));

server.setRequestHandler(ListPromptsRequestSchema, () => ({
  prompts: Object.entries(prompts).map(([name, prompt]) => ({ name, description: prompt.description, arguments: prompt.arguments })),
}));
server.setRequestHandler(GetPromptRequestSchema, (request) => lookup(prompts, request.params.name, "prompt").get(request.params.arguments ?? {}));

server.setRequestHandler(CompleteRequestSchema, (request) => {
  const candidates = ["paris", "park", "party", "test", "testing"];
  const values = candidates.filter((value) => value.startsWith(request.params.argument.value));
  return { completion: { values, total: values.length, hasMore: false } };
});

await server.connect(new StdioServerTransport());
process.stdin.on("end", () => process.exit(0));
