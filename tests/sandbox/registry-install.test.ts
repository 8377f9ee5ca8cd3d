/**
 * Install end to end: a test image (the echo server compiled into one
 * executable at /app/server) pushed to a real Distribution registry on
 * loopback, a locally signed index naming it by digest, `gigmcp registry
 * install` of the compiled binary, and a tool call through the gateway to the
 * installed server running in its sandbox. Tampered inputs are refused and
 * audited.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, ROOT, startTestGateway, tempDir, text, type TestGateway } from "../helpers/gateway.ts";
import { layer, OciLayout, startRegistry, type TestRegistry } from "../helpers/oci-registry.ts";
import { generateSigningKey, writeSignedIndex, type SigningKey } from "../helpers/registry.ts";
import { assertIsolatedNetns } from "./netns.ts";

const GIGMCP = join(ROOT, "dist/gigmcp");

let registry: TestRegistry;
let gateway: TestGateway;
let key: SigningKey;
let indexDir: string;
let digest: string;
let client: Client | undefined;

function manifest(overrides: Record<string, unknown> = {}) {
  return {
    schemaVersion: 1,
    name: "test-echo",
    version: "1.0.0",
    source: { repo: "example.com/gigmcp-tests", tag: "v1.0.0" },
    image: { ref: `${registry.host}/tests/echo`, digest, entrypoint: "/app/server" },
    tier: "sealed",
    entitlements: { egress: ["api.example.com"] },
    tools: [{ name: "echo", default: true }],
    ...overrides,
  };
}

function publish(versions: Record<string, unknown>[], generated = new Date()): string {
  const servers = { "test-echo": { latest: versions.at(-1)!.version as string, versions: Object.fromEntries(versions.map((entry) => [entry.version, entry])) } };
  return writeSignedIndex(indexDir, { schemaVersion: 1, generated: generated.toISOString().replace(/\.\d+Z$/, "Z"), servers }, key);
}

function gigmcp(args: string[]) {
  const result = Bun.spawnSync([GIGMCP, ...args], {
    env: {
      PATH: process.env.PATH!,
      GIG_DATA_DIR: gateway.dataDir,
      GIG_REGISTRY_URL: join(indexDir, "index.json"),
      GIG_REGISTRY_PUBKEY: key.publicKeyHex,
    },
    stdin: "ignore",
  });
  return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

beforeAll(async () => {
  assertIsolatedNetns();
  Bun.spawnSync(["ip", "link", "set", "lo", "up"]);
  registry = await startRegistry();
  const build = tempDir("gigmcp-image-");
  const compiled = Bun.spawnSync([process.execPath, "build", "--compile", "--minify", join(ROOT, "tests/fixtures/registry-echo.ts"), "--outfile", join(build, "server")]);
  if (compiled.exitCode !== 0) throw new Error(compiled.stderr.toString());
  const image = new OciLayout();
  const top = image.image([layer([{ path: "app/", type: "Directory" }, { path: "app/server", mode: 0o755, data: readFileSync(join(build, "server")) }])]);
  digest = image.push(top, registry, "tests/echo");
  key = generateSigningKey();
  indexDir = tempDir("gigmcp-index-");
  gateway = await startTestGateway({ GIG_SANDBOX: "bwrap", GIG_PROXY_PORT: "18086", GIG_SANDBOX_UID_BASE: "330000", GIG_SANDBOX_CGROUP: `gigmcp-registry-${process.pid}` });
}, 120_000);

afterAll(async () => {
  await client?.close();
  await gateway?.close();
  await registry?.stop();
});

test("an index with one flipped byte is refused before parsing, and audited", async () => {
  const path = publish([manifest()]);
  const bytes = readFileSync(path);
  bytes[10] = bytes[10]! ^ 1;
  writeFileSync(path, bytes);
  const refused = gigmcp(["registry", "install", "test-echo", "--yes"]);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/signature/i);
  const [event] = await gateway.store.audit.list({ limit: 1 });
  expect(event).toMatchObject({ action: "registry.install", decision: "deny", detail: expect.objectContaining({ reference: "test-echo" }) });
});

test("a pinned digest the registry does not serve is refused, and nothing is registered", async () => {
  publish([manifest({ image: { ref: `${registry.host}/tests/echo`, digest: `sha256:${"1".repeat(64)}`, entrypoint: "/app/server" } })]);
  const refused = gigmcp(["registry", "install", "test-echo", "--yes"]);
  expect(refused.code).toBe(1);
  expect(await gateway.store.servers.get("test-echo").catch(() => undefined)).toBeUndefined();
});

test("without --yes and without a terminal, install asks for consent and changes nothing", async () => {
  publish([manifest()]);
  const refused = gigmcp(["registry", "install", "test-echo"]);
  expect(refused.code).not.toBe(0);
  expect(refused.stdout).toContain("api.example.com");
  expect(refused.stderr).toContain("--yes");
  expect(await gateway.store.servers.get("test-echo").catch(() => undefined)).toBeUndefined();
});

test("install pulls by digest and the installed server answers through the gateway, sandboxed", async () => {
  publish([manifest()]);
  const installed = gigmcp(["registry", "install", "test-echo", "--yes"]);
  // The only thing said on stderr: the vault's warning that this test runs on a development master key.
  expect(installed.stderr.replace(/^WARNING: development mode: .*\n/m, "")).toBe("");
  expect(installed.code).toBe(0);
  expect(installed.stdout).toContain(`installed test-echo@1.0.0 (${registry.host}/tests/echo@${digest})`);
  const server = await gateway.store.servers.get("test-echo");
  expect(server).toMatchObject({ tier: "sealed", egress: ["api.example.com"], installed: { reference: "test-echo@1.0.0", digest, entrypoint: "/app/server" } });

  client = await connect(`${gateway.url}/mcp/p/main`, await gateway.profile("main", ["test-echo"]));
  expect(text(await client.callTool({ name: "test-echo_echo", arguments: { message: "installed and sandboxed" } }))).toBe("installed and sandboxed");
}, 60_000);

test("an update whose grants changed needs consent again", async () => {
  publish([manifest(), manifest({ version: "1.1.0", entitlements: { egress: ["api.example.com", "files.example.com"] } })]);
  const refused = gigmcp(["registry", "update", "test-echo"]);
  expect(refused.code).not.toBe(0);
  expect(refused.stdout).toContain("need your consent again");
  expect((await gateway.store.servers.get("test-echo")).installed!.reference).toBe("test-echo@1.0.0");
  const updated = gigmcp(["registry", "update", "test-echo", "--yes"]);
  expect(updated.code).toBe(0);
  expect(await gateway.store.servers.get("test-echo")).toMatchObject({ egress: ["api.example.com", "files.example.com"], installed: { reference: "test-echo@1.1.0" } });
}, 60_000);

test("uninstall removes the server and its entrypoint", async () => {
  const { command } = await gateway.store.servers.get("test-echo");
  expect(gigmcp(["registry", "uninstall", "test-echo"]).code).toBe(0);
  expect(await gateway.store.servers.get("test-echo").catch(() => undefined)).toBeUndefined();
  expect(await Bun.file(command).exists()).toBe(false);
});
