/**
 * The toolspec engine (`gigmcp mcp toolspec`): serves one registry toolspec
 * as MCP tools, each call becoming exactly one HTTP request. Configured by the
 * installer through the environment:
 *   TOOLSPEC             the toolspec as JSON (required)
 *   TOOLSPEC_TOOLS       comma-separated tools to expose (default: all)
 *   TOOLSPEC_BASE_URL    replaces the spec's top-level baseUrl (tenant hosts)
 *   TOOLSPEC_AUTH_HEADER, TOOLSPEC_AUTH_FORMAT, TOOLSPEC_AUTH_TOKEN
 *                        all three or none: header = format with {token} filled
 * Bun's fetch honours HTTPS_PROXY, which is how a sandboxed engine reaches the
 * egress proxy; in a sealed sandbox the token is a placeholder the proxy swaps.
 */
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import * as v from "valibot";
// Imported directly, not through ../registry/index.ts: that would load the installer and OCI client into every engine start.
import { headerFormat, headerName } from "../registry/manifest.ts";
import { formatPath } from "../registry/problems.ts";
import { parseToolspec, type Toolspec, type ToolspecTool } from "../registry/toolspec.ts";
import { createToolServer, defineTool, describeIssues, textResult, toolError, type ToolContext, type ToolDefinition } from "./tool-server.ts";

/** Bytes of a response read at most; the rest is never downloaded. */
export const MAX_RESPONSE_BYTES = 1024 * 1024;
const REQUEST_TIMEOUT_MS = 30_000;
/** How much of an error body goes into the tool error. */
const MAX_ERROR_TEXT = 2000;
const HOLE = /\{([^{}]*)\}/g;
const FORBIDDEN_HEADER_VALUE = /[\u0000-\u001f\u007f]/;

type Param = NonNullable<ToolspecTool["params"]>[number];
type Env = Record<string, string | undefined>;
type Arguments = Record<string, unknown>;

/** The engine cannot start as configured; the message says which variable to fix. */
export class ServerConfigError extends Error {
  override name = "ServerConfigError";
}

interface EngineConfig {
  spec: Toolspec;
  tools: ToolspecTool[];
  baseUrl: string;
  auth: { header: string; value: string } | undefined;
}

export function createToolspecServer(version: string, env: Env = process.env) {
  const config = readConfig(env);
  const userAgent = `gigmcp-toolspec/${version}`;
  return createToolServer(
    { name: config.spec.name, version: config.spec.version },
    config.tools.map((tool) => toolDefinition(tool, config, userAgent)),
  );
}

function readConfig(env: Env): EngineConfig {
  const spec = readSpec(env.TOOLSPEC);
  const tools = selectTools(spec, env.TOOLSPEC_TOOLS);
  const baseUrl = env.TOOLSPEC_BASE_URL === undefined ? spec.baseUrl : readBaseUrl(env.TOOLSPEC_BASE_URL);
  const auth = readAuth(env);
  if (auth) {
    const clash = spec.tools.flatMap((tool) => tool.params ?? []).find((param) => param.in === "header" && param.name.toLowerCase() === auth.header.toLowerCase());
    if (clash) throw new ServerConfigError(`the toolspec has a header parameter ${clash.name}, which is TOOLSPEC_AUTH_HEADER: a tool argument must not set the credential header`);
  }
  return { spec, tools, baseUrl, auth };
}

function readSpec(text: string | undefined): Toolspec {
  if (!text) throw new ServerConfigError("TOOLSPEC is not set: it must hold the toolspec as JSON (the installer sets it)");
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new ServerConfigError(`TOOLSPEC is not valid JSON (${error instanceof Error ? error.message : String(error)}): it must hold the toolspec as JSON`);
  }
  const parsed = parseToolspec(document);
  if ("problems" in parsed) {
    const problems = parsed.problems.map((problem) => `  ${formatPath(problem.path) || "(toolspec)"}: ${problem.message}`);
    throw new ServerConfigError(`TOOLSPEC is not a valid toolspec:\n${problems.join("\n")}`);
  }
  return parsed.toolspec;
}

function selectTools(spec: Toolspec, list: string | undefined): ToolspecTool[] {
  if (list === undefined) return spec.tools;
  const names = list.split(",").map((name) => name.trim()).filter((name) => name !== "");
  if (names.length === 0) throw new ServerConfigError("TOOLSPEC_TOOLS names no tool: list the tools to expose, or unset it to expose all");
  const unknown = names.filter((name) => !spec.tools.some((tool) => tool.name === name));
  if (unknown.length > 0) {
    throw new ServerConfigError(`TOOLSPEC_TOOLS names ${unknown.join(", ")}, not in the toolspec (its tools: ${spec.tools.map((tool) => tool.name).join(", ")})`);
  }
  return spec.tools.filter((tool) => names.includes(tool.name));
}

/** An origin only: the path comes from the toolspec, so a base with a path, query or userinfo is a misconfiguration. */
function readBaseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ServerConfigError(`TOOLSPEC_BASE_URL ${JSON.stringify(text)} is not a URL: give an origin such as https://acme.zendesk.com`);
  }
  const originOnly = (url.protocol === "https:" || url.protocol === "http:") && !url.username && !url.password && url.pathname === "/" && !url.search && !url.hash;
  if (!originOnly) throw new ServerConfigError(`TOOLSPEC_BASE_URL ${JSON.stringify(text)} must be a bare http(s) origin such as https://acme.zendesk.com (no path, query or userinfo)`);
  return url.origin;
}

function readAuth(env: Env): EngineConfig["auth"] {
  const parts = { TOOLSPEC_AUTH_HEADER: env.TOOLSPEC_AUTH_HEADER, TOOLSPEC_AUTH_FORMAT: env.TOOLSPEC_AUTH_FORMAT, TOOLSPEC_AUTH_TOKEN: env.TOOLSPEC_AUTH_TOKEN };
  const missing = Object.entries(parts).filter(([, value]) => !value).map(([name]) => name);
  if (missing.length === 3) return undefined;
  if (missing.length > 0) throw new ServerConfigError(`${missing.join(" and ")} not set: the auth header needs TOOLSPEC_AUTH_HEADER, TOOLSPEC_AUTH_FORMAT and TOOLSPEC_AUTH_TOKEN together`);
  const header = v.safeParse(headerName, parts.TOOLSPEC_AUTH_HEADER);
  if (!header.success) throw new ServerConfigError(`TOOLSPEC_AUTH_HEADER: ${describeIssues(header.issues)}`);
  const format = v.safeParse(headerFormat, parts.TOOLSPEC_AUTH_FORMAT);
  if (!format.success) throw new ServerConfigError(`TOOLSPEC_AUTH_FORMAT: ${describeIssues(format.issues)}`);
  if (FORBIDDEN_HEADER_VALUE.test(parts.TOOLSPEC_AUTH_TOKEN!)) throw new ServerConfigError("TOOLSPEC_AUTH_TOKEN contains control characters: it cannot travel in a header");
  return { header: header.output, value: format.output.replace("{token}", parts.TOOLSPEC_AUTH_TOKEN!) };
}

// ---- tools ---------------------------------------------------------------

function toolDefinition(tool: ToolspecTool, config: EngineConfig, userAgent: string): ToolDefinition {
  const params = tool.params ?? [];
  return defineTool({
    name: tool.name,
    description: tool.description,
    input: inputSchema(params),
    annotations: { readOnlyHint: tool.method === "GET", openWorldHint: true },
    run: async (args: Arguments, context: ToolContext) => {
      const built = buildRequest(tool, params, args, config, userAgent);
      if ("error" in built) return toolError(`${tool.name}: ${built.error}`);
      return send(built.url, built.init, context);
    },
  });
}

/** One property per parameter: the JSON Schema clients see and the validator each call goes through. */
function inputSchema(params: Param[]): v.GenericSchema {
  const entries = Object.fromEntries(
    params.map((param) => {
      const typed = param.description === undefined ? valueSchema(param.type) : v.pipe(valueSchema(param.type), v.description(param.description));
      return [param.name, param.required ? typed : v.optional(typed)];
    }),
  );
  // The object's message also covers its keys: an unknown one (expected never) and a missing one (received undefined).
  return v.strictObject(entries, (issue) => {
    if (issue.expected === "never") return `unknown argument: this tool takes ${params.map((param) => param.name).join(", ") || "no arguments"}`;
    return issue.received === "undefined" && issue.path ? "required argument is missing" : "arguments must be an object";
  });
}

function valueSchema(type: Param["type"]): v.GenericSchema {
  const message = (issue: v.BaseIssue<unknown>) => `expected ${type}, got ${issue.received}`;
  switch (type) {
    case "string":
      return v.string(message);
    case "integer":
      return v.pipe(v.number(message), v.integer(`expected integer, got a fraction`));
    case "number":
      return v.number(message);
    case "boolean":
      return v.boolean(message);
    case "array":
      return v.array(v.unknown(), message);
    case "object":
      return v.pipe(v.record(v.string(), v.unknown(), message), v.check((value) => !Array.isArray(value), "expected object, got an array"));
  }
}

// ---- requests ------------------------------------------------------------

interface BuiltRequest {
  url: URL;
  init: RequestInit & { headers: Headers };
}

/** The one request a call makes, as the registry format says; an error names the argument that cannot be sent. */
function buildRequest(tool: ToolspecTool, params: Param[], args: Arguments, config: EngineConfig, userAgent: string): BuiltRequest | { error: string } {
  const given = params.filter((param) => args[param.name] !== undefined);
  const path = fillPath(tool.path, args);
  if ("error" in path) return path;
  // Joined as text, not resolved: a template such as //x must stay a path on the configured host.
  const url = new URL(`${new URL(tool.baseUrl ?? config.baseUrl).origin}${path.path}`);
  // The URL parser resolves dot segments, even percent-encoded ones: a value of ".." must not climb the path.
  if (url.pathname !== path.path) return { error: `a path argument (${path.holes.join(", ")}) would change the request path: . and .. cannot be path values` };

  const query = new URLSearchParams();
  for (const param of given.filter((param) => param.in === "query")) appendEncoded(query, param.name, args[param.name]);
  url.search = query.toString();

  const headers = new Headers({ "user-agent": userAgent, accept: "application/json, text/*;q=0.9, */*;q=0.5" });
  for (const param of given.filter((param) => param.in === "header")) {
    const value = textOf(args[param.name]);
    if (FORBIDDEN_HEADER_VALUE.test(value)) return { error: `${param.name}: a header value cannot contain control characters or line breaks` };
    try {
      headers.set(param.name, value);
    } catch {
      return { error: `${param.name}: ${JSON.stringify(value)} is not a valid header value (use ASCII text)` };
    }
  }
  if (config.auth) headers.set(config.auth.header, config.auth.value);

  const init: BuiltRequest["init"] = { method: tool.method, headers };
  // A tool that declares body parameters always sends a body, so an all-optional call still posts an empty object.
  if (params.some((param) => param.in === "body")) {
    const bodyParams = given.filter((param) => param.in === "body");
    if (tool.encoding === "form") {
      const form = new URLSearchParams();
      for (const param of bodyParams) appendEncoded(form, param.name, args[param.name]);
      headers.set("content-type", "application/x-www-form-urlencoded");
      init.body = form.toString();
    } else {
      headers.set("content-type", "application/json");
      init.body = JSON.stringify(Object.fromEntries(bodyParams.map((param) => [param.name, args[param.name]])));
    }
  }
  return { url, init };
}

/** Fills each {hole} with its percent-encoded value, so `/`, `?` and `#` in a value stay inside one segment. */
function fillPath(template: string, args: Arguments): { path: string; holes: string[] } | { error: string } {
  const holes = [...template.matchAll(HOLE)].map((match) => match[1]!);
  const empty = holes.find((hole) => textOf(args[hole]) === "");
  if (empty !== undefined) return { error: `${empty}: a path argument must not be empty` };
  const path = template.replace(HOLE, (_, hole: string) => encodeURIComponent(textOf(args[hole])));
  if (path.split("/").length !== template.split("/").length) return { error: `a path argument (${holes.join(", ")}) would change the request path` };
  return { path, holes };
}

/** Arrays become repeated keys; objects travel as JSON. */
function appendEncoded(target: URLSearchParams, name: string, value: unknown): void {
  for (const item of Array.isArray(value) ? value : [value]) target.append(name, textOf(item));
}

function textOf(value: unknown): string {
  return typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
}

// ---- responses -----------------------------------------------------------

async function send(url: URL, init: BuiltRequest["init"], context: ToolContext): Promise<CallToolResult> {
  let response: Response;
  try {
    response = await fetch(url, {
      ...init,
      // Following a redirect could leave the allowlist; the egress proxy would refuse it anyway, so say so plainly.
      redirect: "manual",
      signal: AbortSignal.any([context.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
    });
  } catch (error) {
    if (error instanceof Error && error.name === "TimeoutError") return toolError(`${url.host} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`);
    return toolError(`could not reach ${url.host}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (response.status >= 300 && response.status < 400) {
    await response.body?.cancel();
    const location = response.headers.get("location");
    return toolError(`${statusLine(response)}: the API redirected to ${location ?? "(no Location)"}; redirects are not followed, since they could leave the hosts this server may reach`);
  }
  let body: ResponseBody;
  try {
    body = await readBounded(response);
  } catch (error) {
    return toolError(`${url.host} answered HTTP ${response.status} but the body could not be read: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (response.status >= 400) {
    const message = truncateText(body.json === undefined ? body.text : JSON.stringify(body.json), MAX_ERROR_TEXT);
    return toolError(`${statusLine(response)}${message ? `: ${message}` : ""}${body.marker}`);
  }
  return successResult(response, body);
}

interface ResponseBody {
  text: string;
  /** The parsed body, when the whole body was read and is JSON. */
  json: unknown;
  /** Appended when the body was cut, empty otherwise. */
  marker: string;
  bytes: number;
}

/** Reads at most MAX_RESPONSE_BYTES and cancels the rest, so a huge reply never sits in memory whole. */
async function readBounded(response: Response): Promise<ResponseBody> {
  const reader = response.body?.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let complete = true;
  while (reader) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size > MAX_RESPONSE_BYTES) {
      complete = false;
      await reader.cancel();
      break;
    }
  }
  const bytes = Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BYTES);
  // stream: true drops a character cut in half at the limit instead of inventing one.
  const text = new TextDecoder().decode(bytes, { stream: !complete });
  return { text, json: complete ? parseJson(text, response.headers.get("content-type")) : undefined, marker: complete ? "" : truncationMarker(response, bytes.byteLength), bytes: bytes.byteLength };
}

function truncationMarker(response: Response, kept: number): string {
  const declared = Number(response.headers.get("content-length"));
  // A declared length only counts the bytes that follow if the body was not compressed in transit.
  const known = Number.isSafeInteger(declared) && declared > kept && !response.headers.get("content-encoding");
  return known ? `\n[truncated: ${declared - kept} more bytes]` : `\n[truncated: more bytes after the first ${kept} were not read]`;
}

function parseJson(text: string, contentType: string | null): unknown {
  const looksJson = /json/i.test(contentType ?? "") || /^\s*[[{"]/.test(text);
  if (!looksJson || text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * JSON objects are also returned as structuredContent (MCP allows only an object
 * there, and no outputSchema is declared since the toolspec has none); arrays and
 * scalars are not wrapped, so the text and the structured value never disagree.
 */
function successResult(response: Response, body: ResponseBody): CallToolResult {
  if (body.json !== undefined) {
    const text = truncateText(JSON.stringify(body.json), MAX_RESPONSE_BYTES);
    return textResult(text, isPlainObject(body.json) ? body.json : undefined);
  }
  const type = response.headers.get("content-type") ?? "";
  if (body.bytes === 0) return textResult(`${statusLine(response)}: empty response`);
  if (!isTextual(type)) return textResult(`The API returned ${type} (${body.bytes} bytes${body.marker ? " or more" : ""}), which is not text.`);
  return textResult(body.text + body.marker);
}

/** "HTTP 404 Not Found"; HTTP/2 replies carry no reason phrase. */
function statusLine(response: Response): string {
  return `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`;
}

function truncateText(text: string, limit: number): string {
  return text.length > limit ? `${text.slice(0, limit)}\n[truncated: ${text.length - limit} more characters]` : text;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isTextual(contentType: string): boolean {
  return contentType === "" || /^(text\/|application\/(json|xml|xhtml\+xml|javascript|x-www-form-urlencoded|.*\+json|.*\+xml))/i.test(contentType);
}
