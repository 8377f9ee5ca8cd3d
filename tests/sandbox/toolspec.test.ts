/**
 * The catalog through the gateway: every toolpack of ../shared's catalog that
 * has a valid toolspec is installed from a signed index onto the toolspec
 * engine, sandboxed, and one of its tools is called through the gateway and
 * the egress proxy against a local HTTPS stand-in that plays every API host
 * and checks method, path, query and the credential header it received.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { install, loadYaml, openRegistry, parseToolspec, planInstall, type Manifest, type Toolspec, type ToolspecTool } from "../../src/registry/index.ts";
import { openVault, sealCredential, type CredentialSecret } from "../../src/vault/index.ts";
import { connect, startTestGateway, tempDir, text, type TestGateway } from "../helpers/gateway.ts";
import { generateSigningKey, MANIFESTS, syntheticIndex, writeSignedIndex } from "../helpers/registry.ts";
import { assertIsolatedNetns } from "./netns.ts";

interface Received {
  method: string;
  host: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
}

let gateway: TestGateway;
let client: Client;
let standIn: ReturnType<typeof Bun.serve>;
const received: Received[] = [];
const served: string[] = [];
const refused: string[] = [];
const toolspecs = new Map<string, Toolspec>();
let manifests: Manifest[] = [];

/** A test CA and one certificate naming every host the stand-in plays. */
function pki(hosts: string[]): { caPem: string; keyPem: string; certPem: string } {
  const dir = tempDir("gigmcp-toolspec-pki-");
  const run = (args: string[]) => {
    const result = Bun.spawnSync(["openssl", ...args], { cwd: dir });
    if (result.exitCode !== 0) throw new Error(result.stderr.toString());
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  run(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=toolspec stand-in CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
  run(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=stand-in"]);
  writeFileSync(join(dir, "ext.cnf"), `subjectAltName=${hosts.map((host) => `DNS:${host}`).join(",")}\nextendedKeyUsage=serverAuth\n`);
  run(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf"]);
  const read = (name: string) => readFileSync(join(dir, name), "utf8");
  return { caPem: read("ca.pem"), keyPem: read("server.key"), certPem: read("server.pem") };
}

const SECRET = (name: string) => `secret-for-${name}`;

function secretOf(manifest: Manifest): CredentialSecret | undefined {
  const credential = manifest.credentials?.[0];
  if (!credential) return undefined;
  if (credential.type === "basic") return { type: "basic", user: manifest.name, password: SECRET(manifest.name) };
  if (credential.type === "oauth2") return { type: "oauth2", accessToken: SECRET(manifest.name), expiresAt: Date.now() + 86_400_000 };
  return { type: "api_key", key: SECRET(manifest.name) };
}

/** What the API must receive in the credential header, if anything. */
function expectedAuth(manifest: Manifest, spec: Toolspec): { header: string; value: string } | undefined {
  const credential = manifest.credentials?.[0];
  if (!credential) return undefined;
  const inject = credential.inject as { header?: string; format?: string };
  const auth = manifest.tier === "sealed" ? (inject.header ? { header: inject.header, format: inject.format! } : undefined) : spec.auth;
  if (!auth) return undefined;
  const token = credential.type === "basic" ? Buffer.from(`${manifest.name}:${SECRET(manifest.name)}`).toString("base64") : SECRET(manifest.name);
  return { header: auth.header, value: auth.format.replace("{token}", token) };
}

/** Arguments for every required parameter (and optional query ones), with path values that try to break out of their segment. */
function argumentsFor(tool: ToolspecTool): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const param of tool.params ?? []) {
    if (!param.required && param.in !== "query") continue;
    values[param.name] =
      param.type === "integer" ? 7 : param.type === "number" ? 1.5 : param.type === "boolean" ? true : param.type === "object" ? { key: "value" } : param.type === "array" ? ["a", "b"] : param.in === "path" ? "a b/../?#x" : `value of ${param.name}`;
  }
  return values;
}

beforeAll(async () => {
  assertIsolatedNetns();
  Bun.spawnSync(["ip", "link", "set", "lo", "up"]);
  const key = generateSigningKey();
  const document = syntheticIndex();
  document.generated = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const indexDir = tempDir("gigmcp-index-");
  writeSignedIndex(indexDir, document, key);
  const registry = openRegistry({ dataDir: tempDir(), registryUrl: join(indexDir, "index.json"), registryPublicKeys: [key.publicKeyHex], registryMaxAgeMs: 86_400_000 });
  manifests = (await registry.search()).filter((manifest) => manifest.image.builder === "toolpack");

  const hosts = new Set<string>(["acme.zendesk.com"]);
  for (const manifest of manifests) {
    const file = join(MANIFESTS, manifest.name, `${manifest.version}.toolspec.yaml`);
    const parsed = parseToolspec(loadYaml(readFileSync(file, "utf8")).value);
    if ("toolspec" in parsed) {
      toolspecs.set(manifest.name, parsed.toolspec);
      hosts.add(new URL(parsed.toolspec.baseUrl).hostname);
    }
  }
  const certificates = pki([...hosts]);
  standIn = Bun.serve({
    hostname: "127.0.0.1",
    port: 443,
    tls: { key: certificates.keyPem, cert: certificates.certPem },
    fetch(request) {
      const url = new URL(request.url);
      // The raw path as sent: Bun's URL keeps percent-encoding.
      received.push({ method: request.method, host: request.headers.get("host") ?? "", path: url.pathname, query: url.searchParams, headers: request.headers });
      return Response.json({ ok: true, served: url.pathname });
    },
  });

  gateway = await startTestGateway(
    {
      GIG_SANDBOX: "bwrap",
      GIG_PROXY_PORT: "18087",
      GIG_SANDBOX_UID_BASE: "340000",
      GIG_SANDBOX_CGROUP: `gigmcp-toolspec-${process.pid}`,
      GIG_EGRESS_ALLOW_ADDRESSES: "127.0.0.1",
      GIG_REGISTRY_TOOLSPECS: MANIFESTS,
    },
    { egress: { resolve: async () => ["127.0.0.1"], upstreamCaCertificates: [certificates.caPem] } },
  );
  const { vault } = openVault({ dataDir: gateway.dataDir, masterKey: undefined, masterKeyFile: undefined }, () => {});
  for (const manifest of manifests) {
    try {
      const plan = await planInstall(gateway.store, manifest, { toolspecs: MANIFESTS });
      await install(plan, { store: gateway.store, imageStore: join(gateway.dataDir, "images") });
      served.push(manifest.name);
    } catch (error) {
      refused.push(`${manifest.name}: ${(error as Error).message}`);
      continue;
    }
    const secret = secretOf(manifest);
    if (secret) {
      const credentialKey = { serverName: manifest.name, credentialId: manifest.credentials![0]!.id, tenantId: gateway.admin.id };
      await gateway.store.credentials.set({ ...credentialKey, type: secret.type, sealed: sealCredential(vault, credentialKey, secret) });
    }
  }
  client = await connect(`${gateway.url}/mcp/p/catalog`, await gateway.profile("catalog", served));
}, 120_000);

afterAll(async () => {
  await client?.close();
  await gateway?.close();
  standIn?.stop(true);
  console.info(`toolspec engine: ${served.length} of ${manifests.length} catalog toolpacks served; refused:\n  ${refused.join("\n  ")}`);
});

test("every catalog toolpack with a valid toolspec installs onto the engine; the others are refused with the reason", () => {
  expect(manifests.length).toBe(readdirSync(MANIFESTS).filter((name) => readdirSync(join(MANIFESTS, name)).some((file) => file.endsWith(".toolspec.yaml"))).length);
  expect(served.length).toBe(toolspecs.size);
  // Refuse, do not guess: the two toolspecs whose YAML 1.1 booleans stand where parameter names belong.
  for (const line of refused) expect(line).toMatch(/toolspec .* is not valid: .*expected a string, got the boolean/);
});

test("each served server's tools are its default tools, with the spec's parameters as input schema", async () => {
  const { tools } = await client.listTools();
  for (const name of served) {
    const manifest = manifests.find((entry) => entry.name === name)!;
    const spec = toolspecs.get(name)!;
    const listed = tools.filter((tool) => tool.name.startsWith(`${name}_`));
    expect(listed.map((tool) => tool.name).sort()).toEqual(manifest.tools.filter((tool) => tool.default).map((tool) => `${name}_${tool.name}`).sort());
    for (const tool of listed) {
      const specTool = spec.tools.find((entry) => `${name}_${entry.name}` === tool.name)!;
      const properties = Object.keys((tool.inputSchema.properties ?? {}) as Record<string, unknown>).sort();
      expect(properties).toEqual((specTool.params ?? []).map((param) => param.name).sort());
      expect(((tool.inputSchema.required ?? []) as string[]).sort()).toEqual((specTool.params ?? []).filter((param) => param.required).map((param) => param.name).sort());
    }
  }
});

test("one tool of each served server reaches its API through the proxy, with the right request and credential", async () => {
  for (const name of served) {
    const manifest = manifests.find((entry) => entry.name === name)!;
    const spec = toolspecs.get(name)!;
    const tool = spec.tools.find((entry) => manifest.tools.some((listed) => listed.default && listed.name === entry.name))!;
    const args = argumentsFor(tool);
    const before = received.length;
    const result = await client.callTool({ name: `${name}_${tool.name}`, arguments: args });
    expect({ name, isError: result.isError ?? false, text: text(result).slice(0, 200) }).toMatchObject({ name, isError: false });
    expect(received.length).toBe(before + 1);
    const request = received.at(-1)!;
    const expectedPath = new URL(spec.baseUrl).pathname.replace(/\/$/, "") + tool.path.replace(/\{(\w+)\}/g, (_, hole: string) => encodeURIComponent(String(args[hole])));
    expect({ name, method: request.method, host: request.host.replace(/:443$/, ""), path: request.path }).toEqual({ name, method: tool.method, host: new URL(spec.baseUrl).hostname, path: expectedPath });
    for (const param of (tool.params ?? []).filter((entry) => entry.in === "query" && args[entry.name] !== undefined && typeof args[entry.name] !== "object")) {
      expect({ name, param: param.name, value: request.query.get(param.name) }).toEqual({ name, param: param.name, value: String(args[param.name]) });
    }
    const auth = expectedAuth(manifest, spec);
    if (auth) expect({ name, value: request.headers.get(auth.header) }).toEqual({ name, value: auth.value });
    for (const [header, value] of request.headers) expect({ name, header, placeholder: /gigph-[0-9a-f]{32}/.test(value) }).toEqual({ name, header, placeholder: false });
  }
}, 120_000);

test("a tenant host must lie inside the manifest's egress", async () => {
  const zendesk = manifests.find((entry) => entry.name === "zendesk");
  if (!zendesk) return;
  await expect(planInstall(gateway.store, zendesk, { toolspecs: MANIFESTS, baseUrl: "https://evil.example.com" })).rejects.toThrow("outside zendesk's egress");
  const plan = await planInstall(gateway.store, zendesk, { toolspecs: MANIFESTS, baseUrl: "https://acme.zendesk.com" });
  await install(plan, { store: gateway.store, imageStore: join(gateway.dataDir, "images") });
  expect((await gateway.store.servers.get("zendesk")).env.TOOLSPEC_BASE_URL).toBe("https://acme.zendesk.com");
});
