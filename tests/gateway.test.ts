import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { connect, probeSpec, startTestGateway, text, type TestGateway } from "./helpers/gateway.ts";

/** Every tool name, following nextCursor (the gateway here pages by 7). */
async function allTools(session: Client): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await session.listTools(cursor === undefined ? {} : { cursor });
    names.push(...page.tools.map((tool) => tool.name));
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return names;
}

let gw: TestGateway;
let token: string;
let client: Client;

beforeAll(async () => {
  gw = await startTestGateway({}, { pageSize: 7 });
  await gw.addServer(probeSpec("probe"));
  token = await gw.profile("main", ["echo", "probe"]);
  client = await connect(`${gw.url}/mcp/p/main`, token);
});

afterAll(async () => {
  await client?.close();
  await gw?.close();
});

describe("aggregation", () => {
  test("lists the tools of both backends, prefixed, across pages", async () => {
    const first = await client.listTools();
    expect(first.tools.length).toBe(7);
    expect(first.nextCursor).toBeString();
    const names = await allTools(client);
    expect(names).toContain("echo_echo");
    expect(names).toContain("echo_add");
    expect(names).toContain("probe_echo");
    expect(names).toContain("probe_sample");
    expect(new Set(names).size).toBe(names.length);
  });

  test("calls each backend through its prefixed name", async () => {
    expect(text(await client.callTool({ name: "echo_echo", arguments: { message: "hi" } }))).toBe("hi");
    expect(text(await client.callTool({ name: "probe_echo", arguments: { message: "hi" } }))).toBe("probe:hi");
    const sum = await client.callTool({ name: "echo_add", arguments: { a: 2, b: 40 } });
    expect(sum.structuredContent).toEqual({ sum: 42 });
  });

  test("an unknown tool is a JSON-RPC invalid-params error", async () => {
    const error = await client.callTool({ name: "probe_nope", arguments: {} }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: -32602 });
    expect(String(error)).toContain("Unknown tool: probe_nope");
    const unprefixed = await client.callTool({ name: "nothing", arguments: {} }).catch((e: unknown) => e);
    expect(unprefixed).toMatchObject({ code: -32602 });
  });

  test("invalid arguments come back as a tool error from the backend", async () => {
    const result = await client.callTool({ name: "echo_add", arguments: { a: "two", b: 1 } });
    expect(result.isError).toBe(true);
    expect(text(result)).toContain("a:");
  });

  test("prompts and resources are aggregated and routed", async () => {
    const prompts = await client.listPrompts();
    expect(prompts.prompts.map((prompt) => prompt.name)).toEqual(["probe_greet"]);
    const prompt = await client.getPrompt({ name: "probe_greet", arguments: { who: "Ada" } });
    expect(prompt.messages[0]?.content).toEqual({ type: "text", text: "Hello Ada from probe" });

    const resources = await client.listResources();
    expect(resources.resources.map((resource) => resource.uri)).toEqual(["probe://probe/readme"]);
    const read = await client.readResource({ uri: "probe://probe/readme" });
    expect(read.contents[0]).toMatchObject({ text: "readme of probe" });

    const templates = await client.listResourceTemplates();
    expect(templates.resourceTemplates.map((template) => template.uriTemplate)).toEqual(["probe://probe/items/{id}"]);
    const item = await client.readResource({ uri: "probe://probe/items/7" });
    expect(item.contents[0]).toMatchObject({ text: "item 7" });

    const missing = await client.readResource({ uri: "probe://nobody/here" }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: -32002 });
  });

  test("completion is routed to the owner of the template", async () => {
    const result = await client.complete({ ref: { type: "ref/resource", uri: "probe://probe/items/{id}" }, argument: { name: "id", value: "1" } });
    expect(result.completion.values).toEqual(["1", "10"]);
  });
});

describe("profiles", () => {
  test("a tool allow-list hides the other tools, also from calls", async () => {
    const limited = await gw.profile("limited", [{ name: "probe", tools: ["echo"] }, "echo"]);
    const other = await connect(`${gw.url}/mcp/p/limited`, limited);
    const names = await allTools(other);
    expect(names.filter((name) => name.startsWith("probe_"))).toEqual(["probe_echo"]);
    expect(names).toContain("echo_echo");
    const hidden = await other.callTool({ name: "probe_pid", arguments: {} }).catch((e: unknown) => e);
    expect(hidden).toMatchObject({ code: -32602 });
    await other.close();
  });

  test("without prefixes tools keep their names", async () => {
    const plain = await gw.profile("plain", ["echo"], { prefixTools: false });
    const other = await connect(`${gw.url}/mcp/p/plain`, plain);
    expect((await other.listTools()).tools.map((tool) => tool.name).sort()).toEqual(["add", "echo", "slow"]);
    expect(text(await other.callTool({ name: "echo", arguments: { message: "raw" } }))).toBe("raw");
    await other.close();
  });

  test("a name collision without prefixes is refused with a clear error", async () => {
    await gw.addServer(probeSpec("twin"));
    const clash = await gw.profile("clash", ["echo", "twin"], { prefixTools: false });
    const other = await connect(`${gw.url}/mcp/p/clash`, clash);
    const error = await other.listTools().catch((e: unknown) => e);
    expect(String(error)).toContain("exposes tool echo from both echo and twin");
    const call = await other.callTool({ name: "echo", arguments: { message: "x" } }).catch((e: unknown) => e);
    expect(String(call)).toContain("from both echo and twin");
    await other.close();
  });

  test("a configuration change reaches a live session as list_changed", async () => {
    const live = await gw.profile("live", ["echo"]);
    const other = await connect(`${gw.url}/mcp/p/live`, live);
    expect((await allTools(other)).some((name) => name.startsWith("probe_"))).toBe(false);
    const changed = new Promise<void>((resolve) => other.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve()));
    const profile = await gw.store.profiles.get(gw.admin.id, "live");
    await gw.store.profiles.addServer(profile.id, "probe", null);
    await changed;
    expect(await allTools(other)).toContain("probe_echo");
    await other.close();
  });

  test("a backend's own list_changed is forwarded and its cache refreshed", async () => {
    await gw.addServer(probeSpec("grow"));
    const grow = await gw.profile("grow", ["grow"]);
    const other = await connect(`${gw.url}/mcp/p/grow`, grow);
    expect(await allTools(other)).not.toContain("grow_late");
    const changed = new Promise<void>((resolve) => other.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve()));
    await other.callTool({ name: "grow_announce", arguments: {} });
    await changed;
    expect(await allTools(other)).toContain("grow_late");
    await other.close();
  });
});

describe("backend lifecycle", () => {
  test("a crashed backend fails the call in flight and is restarted on next use", async () => {
    await gw.addServer(probeSpec("fragile"));
    const fragile = await gw.profile("fragile", ["fragile"]);
    const other = await connect(`${gw.url}/mcp/p/fragile`, fragile);
    const firstPid = text(await other.callTool({ name: "fragile_pid", arguments: {} }));
    const crash = await other.callTool({ name: "fragile_crash", arguments: {} }).catch((e: unknown) => e);
    expect(String(crash)).toContain("Server fragile stopped while handling the request");
    const secondPid = text(await other.callTool({ name: "fragile_pid", arguments: {} }));
    expect(secondPid).not.toBe(firstPid);
    expect(text(await other.callTool({ name: "fragile_echo", arguments: { message: "back" } }))).toBe("fragile:back");
    await other.close();
  });

  test("backends start with a cleared environment", async () => {
    const names = JSON.parse(text(await client.callTool({ name: "probe_env", arguments: {} }))) as string[];
    expect(names).toContain("PROBE_NAME");
    expect(names).toContain("PATH");
    expect(names).not.toContain("HOME");
    expect(names.filter((name) => name.startsWith("GIG_"))).toEqual([]);
  });

  test("a request that outlives the server's timeout fails with a timeout error and is cancelled", async () => {
    await gw.addServer(probeSpec("sluggish", { timeoutMs: 300 }));
    const sluggish = await gw.profile("sluggish", ["sluggish"]);
    const other = await connect(`${gw.url}/mcp/p/sluggish`, sluggish);
    const started = Date.now();
    const error = await other.callTool({ name: "sluggish_wait", arguments: { ms: 5000 } }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: -32001 });
    expect(String(error)).toContain("did not answer within 0.3s");
    expect(Date.now() - started).toBeLessThan(3000);
    await Bun.sleep(100);
    expect(text(await other.callTool({ name: "sluggish_cancellations", arguments: {} }))).toBe("1");
    await other.close();
  });
});

describe("idle backends", () => {
  test("a backend idle for GIG_IDLE_TIMEOUT is stopped and starts again on next use", async () => {
    const idle = await startTestGateway({ GIG_IDLE_TIMEOUT: "1s" });
    try {
      await idle.addServer(probeSpec("probe"));
      const session = await connect(`${idle.url}/mcp/p/p`, await idle.profile("p", ["probe"]));
      const firstPid = text(await session.callTool({ name: "probe_pid", arguments: {} }));
      expect(idle.gateway.health().backends).toBe(1);
      for (let waited = 0; waited < 3000 && idle.gateway.health().backends > 0; waited += 50) await Bun.sleep(50);
      expect(idle.gateway.health().backends).toBe(0);
      expect(() => process.kill(Number(firstPid), 0)).toThrow();
      expect(text(await session.callTool({ name: "probe_pid", arguments: {} }))).not.toBe(firstPid);
      await session.close();
    } finally {
      await idle.close();
    }
  });
});

describe("load", () => {
  test("100 concurrent calls are all answered correctly", async () => {
    const calls = Array.from({ length: 100 }, (_, index) =>
      client.callTool({ name: index % 2 ? "echo_echo" : "probe_echo", arguments: { message: `m${index}` } }),
    );
    const results = await Promise.all(calls);
    results.forEach((result, index) => expect(text(result)).toBe(index % 2 ? `m${index}` : `probe:m${index}`));
  });

  test("a 5 MB result arrives intact", async () => {
    const bytes = 5 * 1024 * 1024;
    const result = await client.callTool({ name: "probe_big", arguments: { bytes } });
    const body = text(result);
    expect(body.length).toBe(bytes);
    expect(body).toBe("x".repeat(bytes));
  });
});

describe("requests in flight", () => {
  test("progress notifications reach the caller with its own token", async () => {
    const seen: number[] = [];
    const result = await client.callTool({ name: "echo_slow", arguments: { seconds: 0.2, steps: 4 } }, undefined, {
      onprogress: (progress) => seen.push(progress.progress),
    });
    expect(text(result)).toBe("waited 0.2s in 4 steps");
    expect(seen).toEqual([1, 2, 3, 4]);
  });

  test("cancelling a call cancels it in the backend", async () => {
    const before = Number(text(await client.callTool({ name: "probe_cancellations", arguments: {} })));
    const controller = new AbortController();
    const call = client.callTool({ name: "probe_wait", arguments: { ms: 10_000 } }, undefined, { signal: controller.signal });
    await Bun.sleep(200);
    controller.abort("user gave up");
    expect(await call.catch((e: unknown) => String(e))).toContain("user gave up");
    let after = before;
    for (let attempt = 0; attempt < 50 && after === before; attempt++) {
      await Bun.sleep(20);
      after = Number(text(await client.callTool({ name: "probe_cancellations", arguments: {} })));
    }
    expect(after).toBe(before + 1);
  });

  test("sampling, elicitation and roots requests of a backend are relayed to the calling client", async () => {
    const asked: string[] = [];
    const other = await connect(`${gw.url}/mcp/p/main`, token, {
      capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } },
    });
    other.setRequestHandler(CreateMessageRequestSchema, async (request) => {
      const content = request.params.messages[0]?.content;
      asked.push(content && "text" in content ? String(content.text) : "");
      return { role: "assistant", model: "test-model", content: { type: "text", text: "forty-two" } };
    });
    other.setRequestHandler(ElicitRequestSchema, async () => ({ action: "accept", content: { name: "Ada" } }));
    other.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: "file:///work", name: "work" }] }));

    expect(text(await other.callTool({ name: "probe_sample", arguments: { prompt: "meaning of life?" } }))).toBe("forty-two");
    expect(asked).toEqual(["meaning of life?"]);
    expect(JSON.parse(text(await other.callTool({ name: "probe_elicit", arguments: {} })))).toEqual({ action: "accept", content: { name: "Ada" } });
    expect(JSON.parse(text(await other.callTool({ name: "probe_roots", arguments: {} })))).toEqual([{ uri: "file:///work", name: "work" }]);
    const changes = Number(text(await other.callTool({ name: "probe_roots_changes", arguments: {} })));
    await other.sendRootsListChanged();
    let after = changes;
    for (let attempt = 0; attempt < 50 && after === changes; attempt++) {
      await Bun.sleep(20);
      after = Number(text(await other.callTool({ name: "probe_roots_changes", arguments: {} })));
    }
    expect(after).toBe(changes + 1);
    await other.close();
  });

  test("a client without the sampling capability gets a clear error, not a hang", async () => {
    const result = await client.callTool({ name: "probe_sample", arguments: { prompt: "x" } });
    expect(result.isError).toBe(true);
    expect(text(result)).toContain("The client of this session does not support sampling/createMessage");
  });

  test("log messages of a call reach the caller, filtered by its level", async () => {
    const other = await connect(`${gw.url}/mcp/p/main`, token);
    const messages: string[] = [];
    other.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
      messages.push(String(notification.params.data));
    });
    await other.setLoggingLevel("warning");
    await other.callTool({ name: "probe_log", arguments: { levels: ["debug", "info", "warning", "error"] } });
    await Bun.sleep(50);
    expect(messages).toEqual(["warning message", "error message"]);
    await other.close();
  });
});
