/**
 * The compiled executable as a user runs it: management commands against a
 * data dir, `serve --dev` (what `make run` does) and a running gateway
 * picking up changes made by the CLI.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { BUN, connect, PROBE, ROOT, tempDir, text } from "./helpers/gateway.ts";

const GIGMCP = join(ROOT, "dist/gigmcp");
let dataDir: string;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH!, GIG_DATA_DIR: dataDir, GIG_SANDBOX: "off", GIG_LOG_LEVEL: "info", ...extra };
}

function gigmcp(args: string[], extra: Record<string, string> = {}) {
  const result = Bun.spawnSync([GIGMCP, ...args], { env: env(extra) });
  return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

function json<T = unknown>(args: string[]): T {
  const result = gigmcp([...args, "--json"]);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as T;
}

/** Collects a stream's text in the background; the stream is never cancelled (the child must not hit EPIPE). */
function collect(stream: ReadableStream<Uint8Array>): { text(): string } {
  let collected = "";
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) collected += decoder.decode(chunk, { stream: true });
  })();
  return { text: () => collected };
}

async function waitFor<T>(probe: () => T | undefined, what: string, ms = 10_000): Promise<T> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await Bun.sleep(20)) {
    const value = probe();
    if (value !== undefined) return value;
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Starts `gigmcp serve` on a free port; resolves with its URL (and, with --dev, its banner) once it listens. */
async function serve(args: string[] = []): Promise<{ url: string; stdout: string; stop(): Promise<void> }> {
  const child = Bun.spawn([GIGMCP, "serve", ...args], { env: env({ GIG_LISTEN: "127.0.0.1:0" }), stdout: "pipe", stderr: "pipe" });
  const stderr = collect(child.stderr);
  const stdout = collect(child.stdout);
  const url = await waitFor(() => /"msg":"gateway listening","url":"([^"]+)"/.exec(stderr.text())?.[1], "serve to listen");
  const banner = args.includes("--dev") ? await waitFor(() => (/claude mcp add .*"\n/.test(stdout.text()) ? stdout.text() : undefined), "the banner") : "";
  return {
    url,
    stdout: banner,
    async stop() {
      child.kill("SIGTERM");
      expect(await child.exited).toBe(0);
    },
  };
}

beforeAll(() => {
  if (!existsSync(GIGMCP)) throw new Error("dist/gigmcp is missing: run `make build` (make test does)");
  dataDir = tempDir();
});

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("management commands", () => {
  test("every command answers --help with its usage", () => {
    for (const command of [["serve"], ["mcp"], ["profile", "create"], ["profile", "add-server"], ["token", "create"], ["token", "revoke"], ["server", "add"], ["user", "create"]]) {
      const result = gigmcp([...command, "--help"]);
      expect(result.code).toBe(0);
      expect(result.stdout).toStartWith(`Usage: gigmcp ${command.join(" ")}`);
    }
    expect(gigmcp(["--help"]).stdout).toContain("profile add-server");
  });

  test("commands before any user exist say what to do", () => {
    const result = gigmcp(["profile", "list"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("gigmcp user create EMAIL --admin");
  });

  test("users, servers, profiles and tokens", () => {
    expect(json<{ email: string; role: string }>(["user", "create", "Owner@Example.com", "--admin"])).toMatchObject({ email: "owner@example.com", role: "admin" });

    const added = gigmcp(["server", "add", "probe", "--env", "PROBE_NAME=probe", "--env", "API_KEY=s3cret", "--timeout", "5", "--", BUN, PROBE]);
    expect(added.code).toBe(0);
    const servers = json<{ name: string; command: string[]; envNames: string[]; timeoutMs: number }[]>(["server", "list"]);
    expect(servers).toEqual([expect.objectContaining({ name: "probe", command: [BUN, PROBE], envNames: ["PROBE_NAME", "API_KEY"], timeoutMs: 5000 })]);
    expect(gigmcp(["server", "list"]).stdout).not.toContain("s3cret");

    expect(gigmcp(["profile", "create", "work"]).code).toBe(0);
    expect(gigmcp(["profile", "add-server", "work", "probe", "--tools", "echo,pid"]).code).toBe(0);
    expect(json(["profile", "list"])).toEqual([
      expect.objectContaining({ name: "work", prefixTools: true, servers: [{ name: "probe", tools: ["echo", "pid"] }] }),
    ]);

    const created = json<{ profile: string; token: string }>(["token", "create", "work", "--label", "laptop"]);
    expect(created.profile).toBe("work");
    expect(created.token).toMatch(/^gig_[A-Za-z0-9_-]{43}$/);
    const tokens = json<{ prefix: string; label: string; lastUsedAt: number | null }[]>(["token", "list", "work"]);
    expect(tokens).toEqual([expect.objectContaining({ prefix: created.token.slice(0, 12), label: "laptop", lastUsedAt: null })]);
    expect(JSON.stringify(tokens)).not.toContain(created.token);

    const revoked = gigmcp(["token", "revoke", "work", tokens[0]!.prefix]);
    expect(revoked.stdout).toContain("revoked 1 token");
    expect(json<unknown[]>(["token", "list", "work"])).toEqual([]);
  });

  test("mistakes get clear errors and exit codes", () => {
    const unknownProfile = gigmcp(["profile", "add-server", "nope", "probe"]);
    expect(unknownProfile.code).toBe(1);
    expect(unknownProfile.stderr).toContain("no profile named nope");
    const unknownServer = gigmcp(["profile", "add-server", "work", "nope"]);
    expect(unknownServer.code).toBe(1);
    expect(unknownServer.stderr).toContain("no server named nope");
    const duplicate = gigmcp(["profile", "create", "work"]);
    expect([duplicate.code, duplicate.stderr]).toEqual([1, "gigmcp profile create: profile work already exists\n"]);
    const badName = gigmcp(["profile", "create", "My_Profile"]);
    expect(badName.code).toBe(1);
    expect(badName.stderr).toContain("lowercase letters, digits and inner hyphens");
    const noCommand = gigmcp(["server", "add", "x"]);
    expect(noCommand.code).toBe(2);
    expect(noCommand.stderr).toContain("give the server's command after --");
    const badEnv = gigmcp(["server", "add", "x", "--env", "NOEQUALS", "--", "bun"]);
    expect(badEnv.code).toBe(2);
    const unknownFlag = gigmcp(["profile", "list", "--bogus"]);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toContain("--bogus");
    expect(gigmcp(["frobnicate"]).code).toBe(2);
    const badRevoke = gigmcp(["token", "revoke", "work", "gig_nothing"]);
    expect(badRevoke.code).toBe(1);
  });
});

describe("serve", () => {
  test("serve --dev prints a working URL, token and claude line; a new run revokes the old token", async () => {
    const first = await serve(["--dev"]);
    const url = /MCP URL: (\S+)/.exec(first.stdout)?.[1];
    const token = /Token: (\S+)/.exec(first.stdout)?.[1];
    expect(url).toBe(`${first.url}/mcp/p/default`);
    expect(token).toMatch(/^gig_/);
    expect(first.stdout).toContain(`claude mcp add --transport http gigmcp ${url} --header "Authorization: Bearer ${token}"`);
    const client = await connect(url!, token!);
    expect(text(await client.callTool({ name: "echo_echo", arguments: { message: "hello gateway" } }))).toBe("hello gateway");
    expect((await client.listTools()).tools.map((tool) => tool.name)).toContain("fetch_fetch");
    await client.close();
    await first.stop();

    const second = await serve(["--dev"]);
    const stale = await connect(`${second.url}/mcp/p/default`, token!).catch((error: unknown) => error);
    expect(String(stale)).toMatch(/401|Unauthorized/);
    await second.stop();
  });

  test("a running gateway picks up CLI changes without restart", async () => {
    const running = await serve();
    const { token } = json<{ token: string }>(["token", "create", "work"]);
    const client = await connect(`${running.url}/mcp/p/work`, token);
    expect((await client.listTools()).tools.map((tool) => tool.name).sort()).toEqual(["probe_echo", "probe_pid"]);

    const changed = new Promise<void>((resolve) => client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve()));
    expect(gigmcp(["profile", "add-server", "work", "echo"]).code).toBe(0);
    await changed;
    expect((await client.listTools()).tools.map((tool) => tool.name)).toContain("echo_add");
    await client.close();
    await running.stop();
  });
});
