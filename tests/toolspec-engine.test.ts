/**
 * The toolspec engine (`gigmcp mcp toolspec`) over stdio, against a plain-HTTP
 * stand-in API on loopback: every catalog toolspec is served and every tool
 * called, and the stand-in checks the one request each call makes. The
 * gateway-level run through TLS and the egress proxy is tested elsewhere.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server as NetServer } from "node:net";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadYaml, parseToolspec, type Toolspec, type ToolspecTool } from "../src/registry/index.ts";

const ROOT = resolve(import.meta.dir, "..");
const CATALOG = join(ROOT, "../shared/registry/catalog/manifests");
const AUTH = { TOOLSPEC_AUTH_HEADER: "X-Test-Auth", TOOLSPEC_AUTH_FORMAT: "Token {token}", TOOLSPEC_AUTH_TOKEN: "placeholder-123" };

type Param = NonNullable<ToolspecTool["params"]>[number];
interface Seen {
  method: string;
  url: URL;
  headers: Headers;
  body: string;
}

// ---- the stand-in API and a CONNECT recorder for tools on other hosts ------

let api: ReturnType<typeof Bun.serve>;
let respond: (request: Request) => Response | Promise<Response>;
const seen: Seen[] = [];
let proxy: NetServer;
const tunnels: string[] = [];

beforeAll(async () => {
  api = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      seen.push({ method: request.method, url: new URL(request.url), headers: request.headers, body: await request.text() });
      return respond(request);
    },
  });
  // Tools with their own baseUrl go to real hosts; HTTPS_PROXY points here, so the target is recorded and refused.
  proxy = createServer((socket) => {
    socket.once("data", (data) => {
      tunnels.push(data.toString("latin1").split(" ")[1] ?? "");
      socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((done) => proxy.listen(0, "127.0.0.1", done));
});

afterAll(() => {
  api.stop(true);
  proxy.close();
});

beforeEach(() => {
  seen.length = 0;
  tunnels.length = 0;
  respond = () => Response.json({ ok: true });
});

const apiOrigin = () => `http://127.0.0.1:${api.port}`;
const proxyUrl = () => `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;

async function startEngine(spec: unknown, env: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: "toolspec-test", version: "1" });
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [join(ROOT, "src/main.ts"), "mcp", "toolspec"],
    env: { PATH: process.env.PATH!, TOOLSPEC: JSON.stringify(spec), TOOLSPEC_BASE_URL: apiOrigin(), HTTPS_PROXY: proxyUrl(), ...AUTH, ...env },
    stderr: "ignore",
  });
  await client.connect(transport);
  return client;
}

/** Runs the engine expecting it to refuse to start: its exit code and stderr. */
async function refusal(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const child = Bun.spawn([process.execPath, join(ROOT, "src/main.ts"), "mcp", "toolspec"], {
    env: { PATH: process.env.PATH!, ...env },
    stdin: "pipe",
    stdout: "ignore",
    stderr: "pipe",
  });
  const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
  return { code, stderr };
}

/** Serves `total` bytes of "a" as fast as the reader takes them, counting what was written. */
async function slowBigServer(total: number, declareLength: boolean): Promise<{ origin: string; written(): number; close(): void }> {
  let written = 0;
  // node:http, because Bun.serve sends a streamed body chunked even when a content-length is given.
  const server = createHttpServer((_, response) => {
    response.writeHead(200, { "content-type": "text/plain", ...(declareLength && { "content-length": String(total) }) });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const writeMore = () => {
      while (written < total && !response.destroyed) {
        written += chunk.byteLength;
        if (!response.write(chunk)) return void response.once("drain", writeMore);
      }
      response.end();
    };
    writeMore();
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return { origin: `http://127.0.0.1:${(server.address() as { port: number }).port}`, written: () => written, close: () => server.close() };
}

function textOf(result: unknown): string {
  return (result as { content: { text?: string }[] }).content.map((item) => item.text ?? "").join("\n");
}

// ---- catalog specs -----------------------------------------------------------

/**
 * Loads a catalog toolspec. Two specs name a parameter `on` or `n` unquoted,
 * which YAML 1.1 reads as a boolean and parseToolspec rightly refuses; the
 * name is taken back from the source line so those specs are served too.
 */
function loadCatalogSpec(file: string): { spec: Toolspec; repaired: string[] } {
  const source = readFileSync(file, "utf8");
  const loaded = loadYaml(source);
  expect(loaded.problems).toEqual([]);
  const document = loaded.value as { tools: { params?: { name: unknown }[] }[] };
  const repaired: string[] = [];
  document.tools.forEach((tool, toolIndex) =>
    tool.params?.forEach((param, paramIndex) => {
      if (typeof param.name !== "boolean") return;
      const line = source.split("\n")[loaded.lineOf(["tools", toolIndex, "params", paramIndex])! - 1]!;
      const name = /name:\s*([^,}\s]+)/.exec(line)![1]!;
      param.name = name;
      repaired.push(name);
    }),
  );
  const parsed = parseToolspec(document);
  if ("problems" in parsed) throw new Error(`${file}: ${JSON.stringify(parsed.problems)}`);
  return { spec: parsed.toolspec, repaired };
}

const catalogFiles = readdirSync(CATALOG)
  .flatMap((name) => readdirSync(join(CATALOG, name)).filter((file) => file.endsWith(".toolspec.yaml")).map((file) => join(CATALOG, name, file)))
  .sort();

/** A valid value of each type; the string exercises every character that could break out of a path segment. */
const SAMPLES: Record<Param["type"], unknown> = {
  string: "a b/../?#x&y=z",
  integer: 42,
  number: 1.5,
  boolean: true,
  object: { k: "v w", n: 1 },
  array: ["x", "y z"],
};
/** How each sample must appear in a path, written out rather than computed the way the engine does. */
const ENCODED_IN_PATH: Partial<Record<Param["type"], string>> = { string: "a%20b%2F..%2F%3F%23x%26y%3Dz", integer: "42" };
const SENT_AS_TEXT: Record<Param["type"], string[]> = {
  string: ["a b/../?#x&y=z"],
  integer: ["42"],
  number: ["1.5"],
  boolean: ["true"],
  object: ['{"k":"v w","n":1}'],
  array: ["x", "y z"],
};

function sampleArguments(params: Param[]): Record<string, unknown> {
  return Object.fromEntries(params.map((param) => [param.name, SAMPLES[param.type]]));
}

function expectRequest(tool: ToolspecTool, request: Seen): void {
  const params = tool.params ?? [];
  const of = (place: Param["in"]) => params.filter((param) => param.in === place);
  expect(request.method).toBe(tool.method);
  const path = tool.path.replace(/\{([^{}]*)\}/g, (_, hole: string) => ENCODED_IN_PATH[params.find((param) => param.name === hole)!.type]!);
  expect(request.url.pathname).toBe(path);
  expect([...new Set(request.url.searchParams.keys())].sort()).toEqual(of("query").map((param) => param.name).sort());
  for (const param of of("query")) expect(request.url.searchParams.getAll(param.name)).toEqual(SENT_AS_TEXT[param.type]);
  for (const param of of("header")) expect(request.headers.get(param.name)).toBe(SENT_AS_TEXT[param.type][0]!);
  expect(request.headers.get("x-test-auth")).toBe("Token placeholder-123");

  if (of("body").length === 0) {
    expect(request.body).toBe("");
  } else if (tool.encoding === "form") {
    expect(request.headers.get("content-type")).toBe("application/x-www-form-urlencoded");
    const form = new URLSearchParams(request.body);
    expect([...new Set(form.keys())].sort()).toEqual(of("body").map((param) => param.name).sort());
    for (const param of of("body")) expect(form.getAll(param.name)).toEqual(SENT_AS_TEXT[param.type]);
  } else {
    expect(request.headers.get("content-type")).toBe("application/json");
    expect(JSON.parse(request.body)).toEqual(sampleArguments(of("body")));
  }
}

const served = { specs: 0, calls: 0, elsewhere: 0, repaired: [] as string[] };

describe("every catalog toolspec", () => {
  afterAll(() => {
    console.log(
      `toolspec engine: ${served.specs}/${catalogFiles.length} catalog specs served, ${served.calls} calls checked on loopback, ` +
        `${served.elsewhere} calls to per-tool hosts checked at the proxy; YAML 1.1 names restored: ${served.repaired.join(", ") || "none"}`,
    );
  });

  test("the catalog is there", () => expect(catalogFiles.length).toBeGreaterThan(30));

  for (const file of catalogFiles) {
    test(file.slice(CATALOG.length + 1), async () => {
      const { spec, repaired } = loadCatalogSpec(file);
      served.repaired.push(...repaired.map((name) => `${spec.name}:${name}`));
      const engine = await startEngine(spec);
      try {
        const { tools } = await engine.listTools();
        expect(tools.map((tool) => tool.name)).toEqual(spec.tools.map((tool) => tool.name));
        for (const [index, tool] of spec.tools.entries()) {
          const listed = tools[index]!;
          const params = tool.params ?? [];
          expect(listed.description).toBe(tool.description);
          expect(listed.inputSchema.type).toBe("object");
          expect(Object.keys(listed.inputSchema.properties ?? {})).toEqual(params.map((param) => param.name));
          for (const param of params) {
            const property = listed.inputSchema.properties![param.name] as { type: string; description?: string };
            expect(property.type).toBe(param.type);
            expect(property.description).toBe(param.description);
          }
          expect([...(listed.inputSchema.required ?? [])].sort()).toEqual(params.filter((param) => param.required).map((param) => param.name).sort());

          seen.length = 0;
          tunnels.length = 0;
          respond = () => Response.json({ tool: tool.name, items: [1, 2] });
          const result = await engine.callTool({ name: tool.name, arguments: sampleArguments(params) });
          if (tool.baseUrl !== undefined) {
            // Not the tenant base: the request went for the tool's own host, through the proxy.
            expect(tunnels).toEqual([`${new URL(tool.baseUrl).host}:443`]);
            expect(result.isError).toBe(true);
            expect(textOf(result)).toContain(new URL(tool.baseUrl).host);
            served.elsewhere++;
            continue;
          }
          expect(textOf(result)).toBe(JSON.stringify({ tool: tool.name, items: [1, 2] }));
          expect(result.isError).toBeFalsy();
          expect(result.structuredContent).toEqual({ tool: tool.name, items: [1, 2] });
          expect(seen).toHaveLength(1);
          expectRequest(tool, seen[0]!);
          served.calls++;
        }
        served.specs++;
      } finally {
        await engine.close();
      }
    });
  }
});

// ---- behaviour on a small spec -----------------------------------------------

const NOTES = {
  schemaVersion: 1,
  name: "acme-notes",
  version: "1.0.0",
  baseUrl: "https://api.acme-notes.example",
  tools: [
    {
      name: "get_note",
      description: "Read one note",
      method: "GET",
      path: "/v2/notes/{note_id}",
      params: [
        { name: "note_id", in: "path", type: "string", required: true },
        { name: "fields", in: "query", type: "string" },
        { name: "limit", in: "query", type: "integer" },
      ],
    },
    {
      name: "create_note",
      description: "Create a note",
      method: "POST",
      path: "/v2/notes",
      params: [
        { name: "title", in: "body", type: "string", required: true },
        { name: "tags", in: "body", type: "array" },
      ],
    },
  ],
};

describe("one spec in detail", () => {
  let engine: Client;
  beforeAll(async () => (engine = await startEngine(NOTES)));
  afterAll(() => engine.close());

  const call = (name: string, args: Record<string, unknown>) => engine.callTool({ name, arguments: args });

  test("the format doc's example request", async () => {
    const result = await call("get_note", { note_id: "n 1", fields: "title" });
    expect(result.isError).toBeFalsy();
    expect(seen[0]!.url.href).toBe(`${apiOrigin()}/v2/notes/n%201?fields=title`);
  });

  test("bad arguments are tool errors naming the field", async () => {
    const missing = await call("get_note", { fields: "title" });
    expect(missing.isError).toBe(true);
    expect(textOf(missing)).toContain("note_id: required argument is missing");
    const wrongType = await call("get_note", { note_id: "1", limit: "ten" });
    expect(wrongType.isError).toBe(true);
    expect(textOf(wrongType)).toContain('limit: expected integer, got "ten"');
    const fraction = await call("get_note", { note_id: "1", limit: 1.5 });
    expect(textOf(fraction)).toContain("limit:");
    const unknown = await call("get_note", { note_id: "1", colour: "red" });
    expect(unknown.isError).toBe(true);
    expect(textOf(unknown)).toContain("colour: unknown argument");
    expect(seen).toHaveLength(0);
  });

  test("path values cannot change the path", async () => {
    for (const [value, encoded] of [
      ["../../admin", "/v2/notes/..%2F..%2Fadmin"],
      ["x?admin=1#frag", "/v2/notes/x%3Fadmin%3D1%23frag"],
      ["%2e%2e", "/v2/notes/%252e%252e"],
    ]) {
      seen.length = 0;
      expect((await call("get_note", { note_id: value })).isError).toBeFalsy();
      expect(seen[0]!.url.pathname).toBe(encoded!);
      expect(seen[0]!.url.search).toBe("");
    }
    seen.length = 0;
    for (const value of ["..", ".", ""]) {
      const result = await call("get_note", { note_id: value });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain("note_id");
    }
    expect(seen).toHaveLength(0);
  });

  test("HTTP errors are tool errors with the status and the API's message", async () => {
    respond = () => Response.json({ error: "note not found" }, { status: 404, statusText: "Not Found" });
    const notFound = await call("get_note", { note_id: "404" });
    expect(notFound.isError).toBe(true);
    expect(textOf(notFound)).toBe('HTTP 404 Not Found: {"error":"note not found"}');
    respond = () => new Response("database on fire", { status: 500, statusText: "Internal Server Error" });
    const failed = await call("create_note", { title: "t" });
    expect(failed.isError).toBe(true);
    expect(textOf(failed)).toBe("HTTP 500 Internal Server Error: database on fire");
  });

  test("a big reply is cut at 1 MB with a marker and never downloaded whole", async () => {
    // 10 MB with its length declared: the marker counts what was left; 100 MB chunked: the engine must stop reading.
    for (const [total, declared] of [[10 * 1024 * 1024, true], [100 * 1024 * 1024, false]] as const) {
      const big = await slowBigServer(total, declared);
      const engine = await startEngine(NOTES, { TOOLSPEC_BASE_URL: big.origin });
      try {
        const result = await engine.callTool({ name: "get_note", arguments: { note_id: "big" } });
        const text = textOf(result);
        expect(result.isError).toBeFalsy();
        expect(text.startsWith("a".repeat(1024 * 1024))).toBe(true);
        const marker = text.slice(1024 * 1024);
        expect(marker).toBe(declared ? `\n[truncated: ${total - 1024 * 1024} more bytes]` : "\n[truncated: more bytes after the first 1048576 were not read]");
        await Bun.sleep(100);
        // Loopback socket buffers take a few MB more than the engine read, but the rest is never sent.
        expect(big.written()).toBeLessThan(declared ? total : 20 * 1024 * 1024);
      } finally {
        await engine.close();
        big.close();
      }
    }
  });

  test("arrays are text only; non-JSON text is returned as is", async () => {
    respond = () => Response.json([{ id: 1 }]);
    const list = await call("get_note", { note_id: "1" });
    expect(textOf(list)).toBe('[{"id":1}]');
    expect(list.structuredContent).toBeUndefined();
    respond = () => new Response("plain words", { headers: { "content-type": "text/plain" } });
    expect(textOf(await call("get_note", { note_id: "1" }))).toBe("plain words");
  });

  test("a redirect is not followed", async () => {
    respond = () => new Response(null, { status: 302, headers: { location: "https://elsewhere.example/steal" } });
    const result = await call("get_note", { note_id: "1" });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain("https://elsewhere.example/steal");
    expect(seen).toHaveLength(1);
  });

  test("JSON bodies gather the body parameters", async () => {
    await call("create_note", { title: "hello", tags: ["a", "b"] });
    expect(seen[0]!.method).toBe("POST");
    expect(JSON.parse(seen[0]!.body)).toEqual({ title: "hello", tags: ["a", "b"] });
  });

  test("cancelling a call aborts its request", async () => {
    let aborted: Promise<void> = Promise.resolve();
    respond = (request) => {
      aborted = new Promise((done) => request.signal.addEventListener("abort", () => done()));
      return new Promise(() => {});
    };
    const cancel = new AbortController();
    const pending = engine.callTool({ name: "get_note", arguments: { note_id: "slow" } }, undefined, { signal: cancel.signal });
    while (seen.length === 0) await Bun.sleep(10);
    cancel.abort();
    await expect(pending).rejects.toThrow();
    await aborted;
  });
});

describe("configuration", () => {
  test("TOOLSPEC_TOOLS limits what is listed and callable", async () => {
    const engine = await startEngine(NOTES, { TOOLSPEC_TOOLS: "create_note" });
    try {
      expect((await engine.listTools()).tools.map((tool) => tool.name)).toEqual(["create_note"]);
      await expect(engine.callTool({ name: "get_note", arguments: { note_id: "1" } })).rejects.toThrow(/unknown tool/);
    } finally {
      await engine.close();
    }
  });

  test("no auth variables: no auth header", async () => {
    const engine = await startEngine(NOTES, { TOOLSPEC_AUTH_HEADER: "", TOOLSPEC_AUTH_FORMAT: "", TOOLSPEC_AUTH_TOKEN: "" });
    try {
      await engine.callTool({ name: "get_note", arguments: { note_id: "1" } });
      expect(seen[0]!.headers.get("x-test-auth")).toBeNull();
    } finally {
      await engine.close();
    }
  });

  test("an unreachable API is a tool error naming the host", async () => {
    const engine = await startEngine(NOTES, { TOOLSPEC_BASE_URL: "http://127.0.0.1:1" });
    try {
      const result = await engine.callTool({ name: "get_note", arguments: { note_id: "1" } });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain("could not reach 127.0.0.1:1");
    } finally {
      await engine.close();
    }
  });

  test("a bad configuration refuses to start, saying what to fix", async () => {
    const withHeader = structuredClone(NOTES);
    withHeader.tools[0]!.params.push({ name: "x-test-auth", in: "header", type: "string", required: false } as never);
    const cases: [Record<string, string>, string][] = [
      [{}, "TOOLSPEC is not set"],
      [{ TOOLSPEC: "{not json" }, "TOOLSPEC is not valid JSON"],
      [{ TOOLSPEC: JSON.stringify({ ...NOTES, tools: [] }) }, "TOOLSPEC is not a valid toolspec"],
      [{ TOOLSPEC: JSON.stringify(NOTES), TOOLSPEC_TOOLS: "get_note,drop_tables" }, "drop_tables"],
      [{ TOOLSPEC: JSON.stringify(NOTES), TOOLSPEC_BASE_URL: "https://acme.example/path" }, "TOOLSPEC_BASE_URL"],
      [{ TOOLSPEC: JSON.stringify(NOTES), TOOLSPEC_AUTH_HEADER: "Authorization" }, "TOOLSPEC_AUTH_FORMAT and TOOLSPEC_AUTH_TOKEN not set"],
      [{ TOOLSPEC: JSON.stringify(NOTES), ...AUTH, TOOLSPEC_AUTH_FORMAT: "Bearer" }, "TOOLSPEC_AUTH_FORMAT"],
      [{ TOOLSPEC: JSON.stringify(withHeader), ...AUTH }, "header parameter x-test-auth"],
    ];
    const results = await Promise.all(cases.map(([env]) => refusal(env)));
    results.forEach(({ code, stderr }, index) => {
      expect(code).toBe(1);
      expect(stderr).toContain(cases[index]![1]);
    });
  });
});
