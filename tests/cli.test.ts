/**
 * The compiled executable as a user runs it: management commands against a
 * data dir, `serve --dev` (what `make run` does) and a running gateway
 * picking up changes made by the CLI.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { openStore } from "../src/store/index.ts";
import { BUN, connect, PROBE, ROOT, tempDir, text } from "./helpers/gateway.ts";

const GIGMCP = join(ROOT, "dist/gigmcp");
let dataDir: string;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH!, GIG_DATA_DIR: dataDir, GIG_SANDBOX: "off", GIG_LOG_LEVEL: "info", ...extra };
}

function gigmcp(args: string[], extra: Record<string, string> = {}, stdin?: string) {
  const result = Bun.spawnSync([GIGMCP, ...args], { env: env(extra), ...(stdin === undefined ? {} : { stdin: new TextEncoder().encode(stdin) }) });
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
async function serve(args: string[] = [], extra: Record<string, string> = {}): Promise<{ url: string; stdout: string; stop(): Promise<void> }> {
  const child = Bun.spawn([GIGMCP, "serve", ...args], { env: env({ GIG_LISTEN: "127.0.0.1:0", ...extra }), stdout: "pipe", stderr: "pipe" });
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
    for (const command of [
      ["serve"], ["mcp"], ["profile", "create"], ["profile", "add-server"], ["token", "create"], ["token", "revoke"], ["server", "add"], ["user", "create"],
      ["credential", "set"], ["credential", "list"], ["credential", "remove"], ["vault", "status"], ["vault", "rotate"], ["audit", "tail"],
    ]) {
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

describe("the embedded dashboard", () => {
  const page = (url: string) => fetch(url, { headers: { accept: "text/html" } });

  test("GIG_DASHBOARD=embedded serves the export built into the executable, and nothing outside it", async () => {
    const running = await serve([], { GIG_DASHBOARD: "embedded" });
    const exported = join(ROOT, "web/out");
    const home = await page(`${running.url}/`);
    expect(home.status).toBe(200);
    expect(await home.text()).toBe(readFileSync(join(exported, "index.html"), "utf8"));
    expect(await (await page(`${running.url}/login/`)).text()).toBe(readFileSync(join(exported, "login/index.html"), "utf8"));
    const script = [...new Bun.Glob("_next/static/**/*.js").scanSync({ cwd: exported })][0]!;
    const asset = await fetch(`${running.url}/${script}`);
    expect(asset.status).toBe(200);
    expect(Buffer.from(await asset.arrayBuffer()).equals(readFileSync(join(exported, script)))).toBe(true);

    expect((await page(`${running.url}/..%2f..%2f..%2fetc%2fpasswd`)).status).toBe(404);
    // MCP clients still own "/" and the API keeps its paths.
    expect((await fetch(`${running.url}/`, { method: "POST" })).status).toBe(401);
    expect((await fetch(`${running.url}/api/v1/health`)).status).toBe(200);
    await running.stop();
  });

  test("serve --dev tells how to set the admin's dashboard password, as a command that works when pasted", async () => {
    const running = await serve(["--dev"], { GIG_DASHBOARD: "embedded" });
    const line = /^Dashboard: (\S+) \(log in as (\S+); set its password with: (.+)\)$/m.exec(running.stdout);
    expect(line?.[1]).toBe(`${running.url}/`);
    const [, , admin, command] = line!;
    const passphrase = "correct horse battery staple";
    const pasted = Bun.spawnSync(["sh", "-c", command!.replace("'a long passphrase'", `'${passphrase}'`)], { env: { PATH: process.env.PATH! } });
    expect({ code: pasted.exitCode, stderr: pasted.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    const login = await fetch(`${running.url}/api/v1/sessions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: admin, password: passphrase }) });
    expect(login.status).toBe(201);
    await running.stop();
  });

  test("the folder and the embedded copy cannot both be asked for", () => {
    const both = gigmcp(["serve"], { GIG_DASHBOARD: "embedded", GIG_DASHBOARD_DIR: join(ROOT, "web/out") });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("GIG_DASHBOARD=embedded and GIG_DASHBOARD_DIR are both set");
  });
});

describe("credentials, vault and audit", () => {
  const SECRET = "ghp_CliSecretValue0123456789";
  const GITHUB = ["--credential", "id=token,type=api_key,header=Authorization,format=Bearer {token}", "--credential", "id=login,type=basic,header=X-Login,format=Basic {token},env=LOGIN"];

  /** Nothing the CLI printed or stored in plain text contains the secret. */
  function expectNowhere(secret: string, ...outputs: string[]): void {
    for (const text of outputs) expect(text).not.toContain(secret);
    for (const file of readdirSync(dataDir)) expect(readFileSync(`${dataDir}/${file}`).includes(secret)).toBe(false);
  }

  test("server add declares credentials and validates them; server list shows tier and ids", () => {
    const mistakes: [string[], string][] = [
      [["--credential", "id=token,type=api_key"], "a sealed server needs header=NAME and format=FORMAT"],
      [["--credential", "id=token,type=api_key,header=Authorization,format=Bearer"], "format must contain {token} exactly once"],
      [["--tier", "entrusted", "--credential", "id=token,type=api_key"], "an entrusted server needs env=VAR"],
      [["--tier", "entrusted", "--credential", "id=t,type=api_key,env=KEY", "--credential", "id=t,type=basic,env=OTHER"], "credential t is declared twice"],
      [["--tier", "entrusted", "--env", "KEY=1", "--credential", "id=t,type=api_key,env=KEY"], "env KEY is already set"],
      [["--credential", "id=token,type=password,header=A,format={token}"], "type must be one of api_key, basic, oauth2"],
      [["--credential", "id=token,kind=api_key"], 'unknown field "kind"'],
      [["--credential", "token"], "expected id=ID,type=TYPE"],
      [["--tier", "trusted"], "--tier must be sealed or entrusted"],
    ];
    for (const [flags, message] of mistakes) {
      const result = gigmcp(["server", "add", "bad", ...flags, "--", "/bin/cat"]);
      expect([result.code, result.stderr]).toEqual([2, expect.stringContaining(message)]);
    }
    expect(gigmcp(["server", "add", "github", ...GITHUB, "--", "/bin/cat"]).code).toBe(0);
    expect(gigmcp(["server", "add", "vendor", "--tier", "entrusted", "--credential", "id=key,type=api_key,env=VENDOR_KEY", "--", "/bin/cat"]).code).toBe(0);
    const listed = gigmcp(["server", "list"]).stdout;
    expect(listed).toMatch(/github\s+stdio\s+sealed\s+token login\s+/);
    expect(listed).toMatch(/vendor\s+stdio\s+entrusted\s+key\s+/);
    expect(json<{ name: string; credentials: unknown[] }[]>(["server", "list"]).find((server) => server.name === "vendor")?.credentials).toEqual([
      { id: "key", type: "api_key", env: "VENDOR_KEY" },
    ]);
  });

  test("credential set reads stdin only; the secret is never printed, listed or stored in plain text", () => {
    const created = gigmcp(["credential", "set", "github", "token"], {}, `${SECRET}\n`);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^credential github\/token set for owner@example\.com \(created \d{4}-\d\d-\d\dT[\d:]+Z\)\n$/);
    expect(created.stderr).toContain("development mode");
    const updated = gigmcp(["credential", "set", "github", "token"], {}, SECRET);
    expect(updated.stdout).toContain("(updated ");
    expect(gigmcp(["credential", "set", "github", "login"], {}, `octocat:${SECRET}`).code).toBe(0);

    const listed = json<{ server: string; id: string; type: string; tenant: string; status: string }[]>(["credential", "list"]);
    expect(listed).toEqual([
      expect.objectContaining({ server: "github", id: "login", type: "basic", tenant: "owner@example.com", status: "ok" }),
      expect.objectContaining({ server: "github", id: "token", type: "api_key", tenant: "owner@example.com", status: "ok" }),
    ]);
    const human = gigmcp(["credential", "list"]);
    expect(human.stdout).toMatch(/github\s+token\s+api_key\s+owner@example\.com\s+ok\s+/);
    expectNowhere(SECRET, created.stdout, created.stderr, updated.stdout, updated.stderr, JSON.stringify(listed), human.stdout, gigmcp(["server", "list", "--json"]).stdout);
  });

  test("credential set refuses bad input without echoing it", () => {
    const badBasic = gigmcp(["credential", "set", "github", "login"], {}, SECRET);
    expect([badBasic.code, badBasic.stderr]).toEqual([2, expect.stringContaining("invalid basic credential: expected user:password")]);
    const badOauth = gigmcp(["credential", "set", "github", "oauth", "--type", "oauth2"], {}, `{"access_token": "${SECRET}"}`);
    expect([badOauth.code, badOauth.stderr]).toEqual([2, expect.stringContaining('unknown field "access_token"')]);
    const empty = gigmcp(["credential", "set", "github", "token"], {}, "");
    expect([empty.code, empty.stderr]).toEqual([2, expect.stringContaining("stdin was empty")]);
    const undeclared = gigmcp(["credential", "set", "github", "other"], {}, SECRET);
    expect([undeclared.code, undeclared.stderr]).toEqual([2, expect.stringContaining("server github does not declare credential other (it declares: token, login)")]);
    const wrongType = gigmcp(["credential", "set", "github", "token", "--type", "basic"], {}, `a:${SECRET}`);
    expect([wrongType.code, wrongType.stderr]).toEqual([2, expect.stringContaining("declares token as api_key, not basic")]);
    const noServer = gigmcp(["credential", "set", "nope", "token"], {}, SECRET);
    expect([noServer.code, noServer.stderr]).toEqual([1, expect.stringContaining("no server named nope")]);
    for (const result of [badBasic, badOauth, undeclared, wrongType, noServer]) expect(result.stdout + result.stderr).not.toContain(SECRET);

    const forced = gigmcp(["credential", "set", "github", "other", "--type", "api_key"], {}, SECRET);
    expect(forced.code).toBe(0);
    expect(forced.stderr).toContain("note: server github does not declare other");
    expect(json<{ id: string; status: string }[]>(["credential", "list"]).find((credential) => credential.id === "other")?.status).toBe("undeclared");
    expect(gigmcp(["credential", "remove", "github", "other"]).stdout).toBe("removed credential github/other of owner@example.com\n");
    expect(gigmcp(["credential", "remove", "github", "other"]).code).toBe(1);
  });

  test("credentials are per tenant", () => {
    expect(gigmcp(["user", "create", "member@example.com"]).code).toBe(0);
    expect(gigmcp(["credential", "set", "github", "token", "--tenant", "member@example.com"], {}, "member-token").stdout).toContain("set for member@example.com");
    const mine = json<{ tenant: string }[]>(["credential", "list", "--tenant", "owner@example.com"]);
    expect(new Set(mine.map((credential) => credential.tenant))).toEqual(new Set(["owner@example.com"]));
    expect(json<{ tenant: string; id: string }[]>(["credential", "list", "--tenant", "member@example.com"])).toEqual([
      expect.objectContaining({ tenant: "member@example.com", id: "token" }),
    ]);
    expect(json<unknown[]>(["credential", "list"])).toHaveLength(mine.length + 1);
    expect(gigmcp(["credential", "remove", "github", "token", "--tenant", "member@example.com"]).code).toBe(0);
    expect(json<unknown[]>(["credential", "list", "--tenant", "owner@example.com"])).toHaveLength(mine.length);
  });

  test("removing a server keeps its credentials for when it is added again", () => {
    expect(gigmcp(["server", "remove", "github"]).stdout).toBe(
      "removed server github (its 2 stored credentials are kept for when it is added again; `gigmcp credential remove` deletes them)\n",
    );
    expect(new Set(json<{ status: string }[]>(["credential", "list"]).map((credential) => credential.status))).toEqual(new Set(["no-server"]));
    expect(gigmcp(["server", "add", "github", ...GITHUB, "--", "/bin/cat"]).code).toBe(0);
    expect(new Set(json<{ status: string }[]>(["credential", "list"]).map((credential) => credential.status))).toEqual(new Set(["ok"]));
  });

  test("vault status and rotate: a new first key takes over every record, then the old one can go", () => {
    // Two credentials, and the egress proxy's CA key and the audit chain key that `serve` sealed earlier in this file.
    const status = gigmcp(["vault", "status"]);
    expect(status.stdout).toMatch(/dev\s+active\s+4\n/);
    const devKey = /^dev:(\S+)$/m.exec(readFileSync(`${dataDir}/master.key`, "utf8"))![1]!;
    const newKey = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64");
    const both = { GIG_MASTER_KEY: `new:${newKey},dev:${devKey}` };
    expect(gigmcp(["vault", "status"], both).stdout).toMatch(/new\s+active\s+0\ndev\s+decrypt-only\s+4\n/);
    const rotated = gigmcp(["vault", "rotate"], both);
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toBe(
      "re-wrapped 4 sealed records under key new (0 already were)\nkey ids still referenced: new (4 records)\nno record uses dev any more: it can be removed from the keyring\n",
    );
    expect(rotated.stderr).toBe("");
    expect(gigmcp(["vault", "status"], { GIG_MASTER_KEY: `new:${newKey}` }).stdout).toMatch(/new\s+active\s+4\n/);
    const lost = gigmcp(["vault", "status"]);
    expect([lost.code, lost.stdout]).toEqual([1, expect.stringMatching(/new\s+missing\s+4\n/)]);
    expect(gigmcp(["vault", "status"], { GIG_MASTER_KEY: "new:short" }).stderr).toContain("GIG_MASTER_KEY entry 1: the key is not valid base64");
  });

  test("audit tail prints the latest events and follows new ones", async () => {
    const store = await openStore(`sqlite:${dataDir}/gigmcp.db`);
    const owner = (await store.users.byEmail("owner@example.com"))!;
    await store.audit.record({ action: "egress", decision: "allow", tenantId: owner.id, detail: { server: "github", host: "api.github.com", method: "GET", path: "/", status: 200 } });
    await store.audit.record({ action: "egress", decision: "inject", tenantId: owner.id, detail: { server: "github", host: "api.github.com", method: "GET", path: "/user", status: 200, credential: "token" } });
    await store.audit.record({ action: "egress", decision: "deny", actor: "server:github", tenantId: owner.id, detail: { server: "github", host: "evil.example", reason: "not in the egress allowlist" } });

    const tail = gigmcp(["audit", "tail", "-n", "2"]);
    expect(tail.code).toBe(0);
    const lines = tail.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\S+Z  egress  inject  owner@example\.com  server=github host=api\.github\.com method=GET path=\/user status=200 credential=token$/);
    expect(lines[1]).toMatch(/  egress  deny  server:github owner@example\.com  server=github host=evil\.example reason="not in the egress allowlist"$/);
    // Earlier tests' tool calls are in the log too: the three recorded here are the latest.
    const events = gigmcp(["audit", "tail", "--json"]).stdout.trimEnd().split("\n").map((line) => JSON.parse(line) as { decision: string; tenant: string });
    expect(events.slice(-3).map((event) => event.decision)).toEqual(["allow", "inject", "deny"]);
    expect(events.at(-3)!.tenant).toBe("owner@example.com");
    expect(gigmcp(["audit", "tail", "-n", "x"]).code).toBe(2);

    const follower = Bun.spawn([GIGMCP, "audit", "tail", "-n", "1", "--follow"], { env: env(), stdout: "pipe", stderr: "pipe" });
    const followed = collect(follower.stdout);
    await waitFor(() => (followed.text().includes("evil.example") ? true : undefined), "the latest event");
    await store.audit.record({ action: "egress", decision: "allow", tenantId: owner.id, detail: { server: "github", host: "followed.example" } });
    await waitFor(() => (followed.text().includes("followed.example") ? true : undefined), "the followed event");
    follower.kill("SIGTERM");
    expect(await follower.exited).toBe(0);
    expect(followed.text().trimEnd().split("\n")).toHaveLength(2);
    store.close();
  });
});
