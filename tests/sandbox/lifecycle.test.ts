/**
 * Sandbox lifecycle: nothing is left behind, neither after hundreds of
 * start/stop cycles nor after the gateway itself is killed with SIGKILL.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createBackends } from "../../src/cli/runner.ts";
import { loadConfig } from "../../src/config/index.ts";
import { createLogger } from "../../src/log/index.ts";
import { openStore, type Server } from "../../src/store/index.ts";
import { BUN, connect, MAIN, ROOT, tempDir, text } from "../helpers/gateway.ts";
import { assertIsolatedNetns, run } from "./netns.ts";

const GIGMCP = join(ROOT, "dist/gigmcp");

/** Everything a sandbox could leave behind, counted. */
function leftovers(cgroup: string) {
  const links = run(["ip", "-o", "link"]).split("\n").filter((line) => /^\d+: gig\d+[@:]/.test(line)).length;
  const table = Bun.spawnSync(["nft", "-j", "list", "set", "inet", "gigmcp", "allowed_flows"], { stderr: "pipe" });
  const flows = table.exitCode === 0 ? JSON.stringify(JSON.parse(table.stdout.toString())).split('"concat"').length - 1 : 0;
  const groups = ["memory", "pids", "cpu"]
    .map((controller) => join("/sys/fs/cgroup", controller, cgroup))
    .filter((dir) => existsSync(dir))
    .reduce((count, dir) => count + readdirSync(dir, { withFileTypes: true }).filter((entry) => entry.isDirectory()).length, 0);
  return {
    links,
    flows,
    groups,
    mounts: readFileSync("/proc/self/mountinfo", "utf8").split("\n").length,
    fds: readdirSync("/proc/self/fd").length,
  };
}

beforeAll(() => {
  assertIsolatedNetns();
  run(["ip", "link", "set", "lo", "up"]);
});

afterAll(() => {
  Bun.spawnSync(["nft", "delete", "table", "inet", "gigmcp"], { stderr: "ignore" });
});

test("200 sandbox start/stop cycles leave no veth, firewall element, cgroup, mount or fd behind", async () => {
  const cgroup = `gigmcp-cycles-${process.pid}`;
  const config = loadConfig({ GIG_DATA_DIR: tempDir(), GIG_SANDBOX: "bwrap", GIG_SANDBOX_CGROUP: cgroup, GIG_PROXY_PORT: "18082", GIG_LOG_LEVEL: "error" });
  const store = await openStore(config.dbUrl);
  const { runner } = await createBackends({ config, store, log: createLogger("error"), selfCommand: [BUN, MAIN] });
  const server: Server = {
    id: "cycles", name: "cycles", kind: "stdio", command: "/bin/cat", args: [], env: {}, egress: [], roPaths: [], tier: "sealed",
    timeoutMs: null, limits: null, credentials: [], createdAt: 0, updatedAt: 0,
  };
  let before = leftovers(cgroup);
  // Cycle 0 warms up: the runtime opens a few long-lived descriptors of its own on first spawn.
  for (let cycle = 0; cycle <= 200; cycle++) {
    if (cycle === 1) before = leftovers(cgroup);
    const sandbox = await runner.start({ server, tenantId: `tenant-${cycle % 3}`, argv: ["/bin/cat"], env: { PATH: "/usr/bin:/bin" } });
    sandbox.stdin.write("ping\n");
    sandbox.stdin.flush();
    const reader = sandbox.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("ping\n");
    await reader.cancel();
    if (cycle % 2 === 0) sandbox.stdin.end();
    else sandbox.kill("SIGKILL");
    await sandbox.exited;
    await new Response(sandbox.stderr).text();
  }
  const after = leftovers(cgroup);
  expect({ ...after, fds: 0 }).toEqual({ ...before, fds: 0 });
  // Bun closes the stdio sockets of the latest exited child lazily (on GC): allow those, not growth per cycle.
  expect(after.fds).toBeLessThanOrEqual(before.fds + 4);
  await runner.close?.();
  store.close();
  for (const controller of ["memory", "pids", "cpu"]) rmdirSync(join("/sys/fs/cgroup", controller, cgroup));
}, 120_000);

interface Served {
  process: ReturnType<typeof Bun.spawn>;
  url: string;
  token: string;
}

/** `gigmcp serve --dev` of the compiled binary, sandboxed, until it prints its URL and token. */
async function serve(dataDir: string, cgroup: string): Promise<Served> {
  const child = Bun.spawn([GIGMCP, "serve", "--dev"], {
    env: { PATH: process.env.PATH!, GIG_DATA_DIR: dataDir, GIG_LISTEN: "127.0.0.1:0", GIG_SANDBOX: "bwrap", GIG_SANDBOX_CGROUP: cgroup, GIG_PROXY_PORT: "18083", GIG_LOG_LEVEL: "warn" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const reader = child.stdout.getReader();
  let output = "";
  while (!/Token: \S+/.test(output)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve exited: ${output} ${await new Response(child.stderr).text()}`);
    output += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return { process: child, url: /MCP URL: (\S+)/.exec(output)![1]!, token: /Token: (\S+)/.exec(output)![1]! };
}

test("the compiled gateway sandboxes its bundled servers, and a restart after kill -9 reconciles what the dead one left", async () => {
  const dataDir = tempDir();
  const cgroup = `gigmcp-serve-${process.pid}`;
  const first = await serve(dataDir, cgroup);
  const client = await connect(first.url, first.token);
  expect(text(await client.callTool({ name: "echo_echo", arguments: { message: "sandboxed" } }))).toBe("sandboxed");
  expect(leftovers(cgroup)).toMatchObject({ links: 1, flows: 1, groups: 3 });
  first.process.kill("SIGKILL");
  await first.process.exited;
  await client.close().catch(() => undefined);
  // The dead gateway's sandbox dies with it (parent-death signal), its groups and firewall element stay.
  expect(leftovers(cgroup).groups + leftovers(cgroup).flows).toBeGreaterThan(0);

  const second = await serve(dataDir, cgroup);
  expect(leftovers(cgroup)).toMatchObject({ links: 0, flows: 0, groups: 0 });
  const again = await connect(second.url, second.token);
  expect(text(await again.callTool({ name: "echo_add", arguments: { a: 2, b: 3 } }))).toBe("5");
  await again.close();
  second.process.kill("SIGTERM");
  await second.process.exited;
  expect(leftovers(cgroup)).toMatchObject({ links: 0, flows: 0, groups: 0 });
  for (const controller of ["memory", "pids", "cpu"]) rmdirSync(join("/sys/fs/cgroup", controller, cgroup));
  rmSync(dataDir, { recursive: true, force: true });
}, 120_000);
