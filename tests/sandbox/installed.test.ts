/**
 * Installed servers: the entrypoint lives in the gateway's private store (no
 * sandbox uid can read it there); it is hash-checked before every start and
 * mounted from the very descriptor that was hashed, at its path in the image.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { appendFileSync, chmodSync, copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { connect, ROOT, startTestGateway, text, type TestGateway } from "../helpers/gateway.ts";
import { assertIsolatedNetns } from "./netns.ts";

let gateway: TestGateway;
let client: Client;
let entrypoint: string;

beforeAll(async () => {
  assertIsolatedNetns();
  Bun.spawnSync(["ip", "link", "set", "lo", "up"]);
  gateway = await startTestGateway({ GIG_SANDBOX: "bwrap", GIG_PROXY_PORT: "18085", GIG_SANDBOX_UID_BASE: "320000", GIG_SANDBOX_CGROUP: `gigmcp-installed-${process.pid}` });
  const store = join(gateway.dataDir, "images", "entrypoints");
  mkdirSync(store, { recursive: true, mode: 0o700 });
  chmodSync(gateway.dataDir, 0o700);
  entrypoint = join(store, "server");
  copyFileSync(join(ROOT, "dist/gigmcp"), entrypoint);
  chmodSync(entrypoint, 0o555);
  const sha256 = new Bun.CryptoHasher("sha256").update(await Bun.file(entrypoint).arrayBuffer()).digest("hex");
  await gateway.addServer({
    name: "installed",
    command: entrypoint,
    args: ["mcp", "echo"],
    installed: { reference: "installed@1.0.0", image: "127.0.0.1:5000/test/echo", digest: `sha256:${"a".repeat(64)}`, entrypoint: "/app/server", entrypointSha256: sha256, consentHash: "test" },
  });
  client = await connect(`${gateway.url}/mcp/p/main`, await gateway.profile("main", ["installed"]));
}, 60_000);

afterAll(async () => {
  await client?.close();
  await gateway?.close();
});

test("an installed entrypoint from the private store runs in the sandbox at its image path", async () => {
  expect(text(await client.callTool({ name: "installed_echo", arguments: { message: "from the store" } }))).toBe("from the store");
});

test("an entrypoint changed on disk after install is refused at the next start, naming the fix", async () => {
  for (const backend of gateway.gateway.supervisor.running()) await gateway.gateway.supervisor.stop(backend);
  appendFileSync(entrypoint, "tampered");
  const result = await client.callTool({ name: "installed_echo", arguments: { message: "again" } }).catch((error: Error) => error);
  expect(String(result instanceof Error ? result.message : text(result))).toContain("changed since it was installed");
  expect(String(result instanceof Error ? result.message : text(result))).toContain("gigmcp registry install installed@1.0.0");
});
