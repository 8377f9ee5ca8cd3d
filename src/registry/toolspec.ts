/**
 * The toolspec: how each tool of a toolpack server becomes one HTTP request.
 * Checked alone (paths, parameters, methods) and against its manifest (same
 * tools, every base host inside the manifest's egress, auth by tier).
 */
import * as v from "valibot";
import { baseUrlHost, egressAllows } from "./egress.ts";
import { duplicates, headerFormat, headerName, NAME_PATTERN, RESERVED_HEADERS, VERSION_PATTERN, type Manifest } from "./manifest.ts";
import { issueProblems, problem, type FieldPath, type Problem } from "./problems.ts";

const METHODS_WITH_BODY = new Set(["POST", "PUT", "PATCH"]);
const HOLE = /\{([^{}]*)\}/g;
const HOLE_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

const baseUrl = v.pipe(
  v.string(),
  v.check((url) => "host" in baseUrlHost(url), (issue) => {
    const parsed = baseUrlHost(issue.input as string);
    return "problem" in parsed ? parsed.problem : "";
  }),
);

const ParamSchema = v.strictObject({
  name: v.pipe(v.string(), v.minLength(1, "a parameter name must not be empty")),
  in: v.picklist(["path", "query", "body", "header"], "must be path, query, body or header"),
  type: v.picklist(["string", "integer", "number", "boolean", "object", "array"], "must be string, integer, number, boolean, object or array"),
  required: v.optional(v.boolean()),
  description: v.optional(v.string()),
});

const ToolSchema = v.strictObject({
  name: v.pipe(v.string(), v.minLength(1, "a tool name must not be empty")),
  description: v.pipe(v.string(), v.minLength(1, "a tool needs a description: it becomes the MCP tool description")),
  method: v.picklist(["GET", "POST", "PUT", "PATCH", "DELETE"], "must be GET, POST, PUT, PATCH or DELETE"),
  path: v.pipe(
    v.string(),
    v.startsWith("/", "must be an absolute path such as /v1/items/{id}"),
    v.check((path) => !/[\s?#\u0000-\u001f\u007f]/.test(path), "must be a bare path: no spaces, query (?) or fragment (#); query parameters go in params"),
  ),
  baseUrl: v.optional(baseUrl),
  encoding: v.optional(v.picklist(["json", "form"], "must be json or form")),
  params: v.optional(v.array(ParamSchema)),
});

export const ToolspecSchema = v.strictObject({
  schemaVersion: v.literal(1, "must be 1 (the only schema version there is)"),
  name: v.pipe(v.string(), v.regex(NAME_PATTERN, "must be the manifest's name")),
  version: v.pipe(v.string(), v.regex(VERSION_PATTERN, "must be the manifest's version, MAJOR.MINOR.PATCH")),
  baseUrl,
  auth: v.optional(v.strictObject({ header: headerName, format: headerFormat })),
  tools: v.pipe(v.array(ToolSchema), v.minLength(1, "a toolspec needs at least one tool")),
});

export type Toolspec = v.InferOutput<typeof ToolspecSchema>;
export type ToolspecTool = Toolspec["tools"][number];

/** Validates a parsed document as a toolspec on its own: the toolspec, or every problem found. */
export function parseToolspec(input: unknown): { toolspec: Toolspec } | { problems: Problem[] } {
  const { toolspec, problems } = checkToolspec(input);
  return toolspec && problems.length === 0 ? { toolspec } : { problems };
}

/** Every problem of a toolspec on its own, and the toolspec itself if its structure is sound (so it can still be checked against its manifest). */
export function checkToolspec(input: unknown): { toolspec: Toolspec | undefined; problems: Problem[] } {
  const result = v.safeParse(ToolspecSchema, input);
  if (!result.success) return { toolspec: undefined, problems: issueProblems(result.issues) };
  return { toolspec: result.output, problems: toolspecRuleProblems(result.output) };
}

function toolspecRuleProblems(spec: Toolspec): Problem[] {
  const problems: Problem[] = [];
  duplicates(spec.tools.map((tool) => tool.name)).forEach((index) =>
    problems.push(problem(["tools", index, "name"], `tool ${spec.tools[index]!.name} is defined twice: tool names must be unique`)),
  );
  spec.tools.forEach((tool, index) => problems.push(...toolProblems(tool, ["tools", index], spec.auth?.header)));
  return problems;
}

function toolProblems(tool: ToolspecTool, at: FieldPath, authHeader: string | undefined): Problem[] {
  const problems: Problem[] = [];
  const params = tool.params ?? [];
  duplicates(params.map((param) => param.name)).forEach((index) =>
    problems.push(problem([...at, "params", index, "name"], `parameter ${params[index]!.name} is defined twice: all of a tool's parameters share one namespace`)),
  );

  const holes = [...tool.path.matchAll(HOLE)].map((match) => match[1]!);
  if (tool.path.replace(HOLE, "").includes("{") || tool.path.replace(HOLE, "").includes("}")) {
    problems.push(problem([...at, "path"], "unbalanced { or }: a hole is {name}"));
  }
  for (const hole of holes) {
    if (!HOLE_NAME.test(hole)) problems.push(problem([...at, "path"], `hole {${hole}} must be named by a parameter name (letters, digits, _ . -)`));
  }
  duplicates(holes).forEach((index) => problems.push(problem([...at, "path"], `hole {${holes[index]}} appears twice: each path parameter fills one hole`)));
  const pathParams = params.map((param, index) => ({ param, index })).filter(({ param }) => param.in === "path");
  for (const hole of new Set(holes)) {
    if (!pathParams.some(({ param }) => param.name === hole)) {
      problems.push(problem([...at, "path"], `hole {${hole}} has no parameter: add {name: ${hole}, in: path, required: true}`));
    }
  }
  for (const { param, index } of pathParams) {
    if (!holes.includes(param.name)) problems.push(problem([...at, "params", index, "in"], `path parameter ${param.name} has no {${param.name}} hole in the path`));
    if (param.required !== true) problems.push(problem([...at, "params", index, "required"], `path parameter ${param.name} must be required: true`));
  }

  params.forEach((param, index) => {
    if (param.in === "body" && !METHODS_WITH_BODY.has(tool.method)) {
      problems.push(problem([...at, "params", index, "in"], `body parameters need POST, PUT or PATCH, not ${tool.method}: make ${param.name} a query parameter or change the method`));
    }
    if (param.in !== "header") return;
    const name = param.name.toLowerCase();
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(param.name) || RESERVED_HEADERS.has(name)) {
      problems.push(problem([...at, "params", index, "name"], `header parameter ${param.name} must be an HTTP header name that does not frame the request`));
    } else if (authHeader !== undefined && name === authHeader.toLowerCase()) {
      problems.push(problem([...at, "params", index, "name"], `header parameter ${param.name} is the auth header: the credential goes there, not a tool argument`));
    }
  });
  return problems;
}

/** Problems of a toolspec against its manifest: same name, version and tools; hosts inside egress; auth as the tier needs. */
export function toolspecManifestProblems(spec: Toolspec, manifest: Manifest): Problem[] {
  const problems: Problem[] = [];
  if (spec.name !== manifest.name) problems.push(problem(["name"], `must equal the manifest's name ${manifest.name}`));
  if (spec.version !== manifest.version) problems.push(problem(["version"], `must equal the manifest's version ${manifest.version}`));

  const manifestTools = new Set(manifest.tools.map((tool) => tool.name));
  const specTools = new Set(spec.tools.map((tool) => tool.name));
  spec.tools.forEach((tool, index) => {
    if (!manifestTools.has(tool.name)) problems.push(problem(["tools", index, "name"], `${tool.name} is not a tool of the manifest: add it there or remove it here`));
  });
  const missing = manifest.tools.filter((tool) => !specTools.has(tool.name)).map((tool) => tool.name);
  if (missing.length > 0) problems.push(problem(["tools"], `the manifest's tool${missing.length === 1 ? "" : "s"} ${missing.join(", ")} ha${missing.length === 1 ? "s" : "ve"} no entry here`));

  const hostProblem = (url: string, at: FieldPath) => {
    const parsed = baseUrlHost(url);
    if ("host" in parsed && !egressAllows(manifest, parsed.host)) {
      problems.push(problem(at, `host ${parsed.host} is not allowed by the manifest's egress (${manifest.entitlements.egress.join(", ") || "none"}): add it there`));
    }
  };
  hostProblem(spec.baseUrl, ["baseUrl"]);
  spec.tools.forEach((tool, index) => tool.baseUrl !== undefined && hostProblem(tool.baseUrl, ["tools", index, "baseUrl"]));

  const credentials = manifest.credentials ?? [];
  if (manifest.tier === "sealed" && spec.auth !== undefined) {
    problems.push(problem(["auth"], "a sealed server's toolspec takes no auth: the egress proxy injects the credential as the manifest says"));
  }
  if (manifest.tier === "entrusted" && credentials.length > 0 && spec.auth === undefined) {
    problems.push(problem(["auth"], "an entrusted server with credentials needs auth {header, format}: where the engine puts the secret"));
  }
  // A tool argument must not be able to set the header a sealed credential travels in.
  const credentialHeaders = new Set(credentials.flatMap((credential) => (credential.inject.header ? [credential.inject.header.toLowerCase()] : [])));
  spec.tools.forEach((tool, toolIndex) =>
    (tool.params ?? []).forEach((param, index) => {
      if (param.in === "header" && credentialHeaders.has(param.name.toLowerCase())) {
        problems.push(problem(["tools", toolIndex, "params", index, "name"], `header parameter ${param.name} is where the credential is injected: it cannot be a tool argument`));
      }
    }),
  );
  return problems;
}
