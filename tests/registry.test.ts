/**
 * The registry: lint of manifests and toolspecs (the real catalog from
 * ../shared and mutated copies), the signed index (signature before parsing,
 * rollback, freeze, file and HTTP sources, references) and consent.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadDenylist, matchesEgress } from "../src/proxy/index.ts";
import {
  assertInstallable,
  consentHash,
  consentSummary,
  egressAllows,
  egressForProxy,
  formatLintProblem,
  lintPaths,
  loadYaml,
  MAX_INDEX_BYTES,
  openRegistry,
  parseManifest,
  verifyIndexSignature,
  type Manifest,
} from "../src/registry/index.ts";
import { ROOT, tempDir } from "./helpers/gateway.ts";
import { CATALOG, generateSigningKey, MANIFESTS, registrySettings, serveFolder, SIGNED, syntheticIndex, writeSignedIndex } from "./helpers/registry.ts";

const DENYLIST = loadDenylist(readFileSync(join(ROOT, "src/proxy/exfil-denylist.txt"), "utf8"));
const GIGMCP = join(ROOT, "dist/gigmcp");
const DAY = 86_400_000;
const cleanup: string[] = [];
afterAll(() => cleanup.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function scratch(): string {
  const dir = tempDir("gigmcp-registry-test-");
  cleanup.push(dir);
  return dir;
}

// eslint-style any: the mutations below poke at arbitrary fields of parsed YAML.
type Doc = Record<string, any>;

function readDoc(file: string): Doc {
  const loaded = loadYaml(readFileSync(file, "utf8"));
  expect(loaded.problems).toEqual([]);
  return loaded.value as Doc;
}

function catalogManifest(name: string): Manifest {
  const parsed = parseManifest(readDoc(join(MANIFESTS, name, "0.1.0.yaml")));
  if (!("manifest" in parsed)) throw new Error(`${name}: ${JSON.stringify(parsed.problems)}`);
  return parsed.manifest;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * bubble's manifest and toolspec after `mutate`, written (as JSON, which is
 * YAML) to manifests/<folder>/ in a fresh tree and linted; returns the lines
 * and the two file names.
 */
function lintMutated(mutate: (files: { manifest: Doc; toolspec: Doc | undefined }) => void, folder = "bubble") {
  const root = scratch();
  const dir = join(root, "manifests", folder);
  mkdirSync(dir, { recursive: true });
  const files = { manifest: readDoc(join(MANIFESTS, "bubble/0.1.0.yaml")) as Doc | undefined, toolspec: readDoc(join(MANIFESTS, "bubble/0.1.0.toolspec.yaml")) as Doc | undefined };
  mutate(files as { manifest: Doc; toolspec: Doc | undefined });
  const manifestFile = join(dir, "0.1.0.yaml");
  const toolspecFile = join(dir, "0.1.0.toolspec.yaml");
  if (files.manifest) writeFileSync(manifestFile, JSON.stringify(files.manifest, null, 2));
  if (files.toolspec) writeFileSync(toolspecFile, JSON.stringify(files.toolspec, null, 2));
  const lines = lintPaths([root], { denylist: DENYLIST }).problems.map(formatLintProblem);
  return { lines, manifestFile, toolspecFile };
}

/** Asserts a line `file: field.path: reason…` is among `lines`. */
function expectProblem(lines: string[], file: string, fieldPath: string, reason: string): void {
  expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^${escape(file)}: ${escape(fieldPath)}: .*${escape(reason)}`))]));
}

describe("lint", () => {
  test("the real catalog passes, except the toolspecs whose parameter names YAML 1.1 reads as booleans", () => {
    const result = lintPaths([MANIFESTS], { denylist: DENYLIST });
    expect(result.checked).toBe(77); // 40 manifests, 37 toolspecs
    const byFile = Map.groupBy(result.problems, (found) => found.file.slice(MANIFESTS.length + 1));
    expect([...byFile.keys()].sort()).toEqual(["amplitude/0.1.0.toolspec.yaml", "mixpanel/0.1.0.toolspec.yaml"]);
    const lines = result.problems.map(formatLintProblem);
    // amplitude's parameter `n` and mixpanel's three parameters `on`.
    expectProblem(lines, join(MANIFESTS, "amplitude/0.1.0.toolspec.yaml"), "tools[1].params[5].name", "got the boolean false: YAML 1.1 reads unquoted on, off, yes, no, y, n, true and false as booleans, so quote the value (line 31)");
    for (const at of ["tools[0].params[5]", "tools[1].params[9]", "tools[2].params[12]"]) {
      expectProblem(lines, join(MANIFESTS, "mixpanel/0.1.0.toolspec.yaml"), `${at}.name`, "got the boolean true: YAML 1.1 reads unquoted on");
    }
    expect(lines).toHaveLength(4);
  });

  test("the registry's own denylist, added to ours, finds nothing more in the catalog", () => {
    const theirs = loadDenylist(readFileSync(join(CATALOG, "denylist/exfil-domains.txt"), "utf8"));
    expect(lintPaths([MANIFESTS], { denylist: [...DENYLIST, ...theirs] }).problems).toHaveLength(4);
  });

  test("an unchanged copy passes", () => {
    expect(lintMutated(() => {}).lines).toEqual([]);
  });

  test("wrong types and unknown fields are refused with their field path", () => {
    const { lines, manifestFile } = lintMutated(({ manifest }) => {
      manifest.image.entrypoint = 42;
      manifest.image.platform = "linux/amd64";
      manifest.tools[0].default = "yes";
      delete manifest.tier;
    });
    expectProblem(lines, manifestFile, "image.entrypoint", "expected string, got 42");
    expectProblem(lines, manifestFile, "image.platform", "unknown field");
    expectProblem(lines, manifestFile, "tools[0].default", "expected boolean");
    expectProblem(lines, manifestFile, "tier", "required field is missing");
  });

  test("YAML: booleans, duplicate keys, aliases and merge keys are refused, never converted", () => {
    const root = scratch();
    const dir = join(root, "manifests/bubble");
    mkdirSync(dir, { recursive: true });
    const original = readFileSync(join(MANIFESTS, "bubble/0.1.0.yaml"), "utf8");
    writeFileSync(join(dir, "0.1.0.yaml"), original.replace("displayName: Bubble", "displayName: yes").replace("tier: sealed", "tier: sealed\ntier: entrusted"));
    cpSync(join(MANIFESTS, "bubble/0.1.0.toolspec.yaml"), join(dir, "0.1.0.toolspec.yaml"));
    const lines = lintPaths([root], { denylist: DENYLIST }).problems.map(formatLintProblem);
    expectProblem(lines, join(dir, "0.1.0.yaml"), "tier", "duplicate key");

    writeFileSync(join(dir, "0.1.0.yaml"), original.replace("displayName: Bubble", "displayName: yes"));
    const booleans = lintPaths([join(dir, "0.1.0.yaml")], { denylist: DENYLIST }).problems.map(formatLintProblem);
    expectProblem(booleans, join(dir, "0.1.0.yaml"), "displayName", "expected a string, got the boolean true");

    expect(loadYaml("a: &x hello\nb: *x\n").problems[0]?.message).toContain("aliases");
    expect(loadYaml("base: {a: 1}\nother:\n  <<: {a: 1}\n").problems[0]?.message).toContain("merge keys");
    expect(loadYaml("on: 1\n").problems[0]?.message).toContain("is not a string");
  });

  test("egress entries: bad wildcards, ports, IPs and denylisted hosts", () => {
    const { lines, manifestFile } = lintMutated(({ manifest }) => {
      manifest.entitlements.egress.push("*.io", "api.*.example.com", "bubble.io:443", "10.0.0.1", "API.Example.com");
    });
    expectProblem(lines, manifestFile, "entitlements.egress[2]", "too broad: a wildcard needs a suffix of at least two labels");
    expectProblem(lines, manifestFile, "entitlements.egress[3]", 'a wildcard is allowed only as a leading "*."');
    expectProblem(lines, manifestFile, "entitlements.egress[4]", "ports, paths and URLs are not allowed");
    expectProblem(lines, manifestFile, "entitlements.egress[5]", "IP addresses are not allowed");
    expectProblem(lines, manifestFile, "entitlements.egress[6]", "lowercase");
    // Denylisted hosts are judged once the entries are well-formed.
    const denied = lintMutated(({ manifest }) => manifest.entitlements.egress.push("dumps.pastebin.com", "*.webhook.site"));
    expectProblem(denied.lines, denied.manifestFile, "entitlements.egress[2]", "dumps.pastebin.com reaches pastebin.com, which is on the egress denylist");
    expectProblem(denied.lines, denied.manifestFile, "entitlements.egress[3]", "reaches webhook.site");
  });

  test("a tool in one file but not the other, and a missing toolspec or manifest", () => {
    const renamed = lintMutated(({ toolspec }) => {
      toolspec!.tools[1].name = "get_swagger";
    });
    expectProblem(renamed.lines, renamed.toolspecFile, "tools[1].name", "get_swagger is not a tool of the manifest");
    expectProblem(renamed.lines, renamed.toolspecFile, "tools", "the manifest's tool get_bubble_api_swagger_json has no entry here");

    const noToolspec = lintMutated((files) => {
      files.toolspec = undefined;
    });
    expectProblem(noToolspec.lines, noToolspec.manifestFile, "image.builder", "a toolpack server needs its toolspec 0.1.0.toolspec.yaml");

    const noManifest = lintMutated((files) => {
      (files as { manifest: Doc | undefined }).manifest = undefined;
    });
    expectProblem(noManifest.lines, noManifest.toolspecFile, "(document)", "no manifest 0.1.0.yaml beside this toolspec");
  });

  test("a body parameter on GET, path holes and parameters that do not match", () => {
    const { lines, toolspecFile } = lintMutated(({ toolspec }) => {
      toolspec!.tools[1].params = [{ name: "filter", in: "body", type: "string" }];
      toolspec!.tools[0].path = "/api/1.1/obj/{typename}/{thing_id}";
      toolspec!.tools[2].params[0].required = false;
    });
    expectProblem(lines, toolspecFile, "tools[1].params[0].in", "body parameters need POST, PUT or PATCH, not GET");
    expectProblem(lines, toolspecFile, "tools[0].path", "hole {thing_id} has no parameter");
    expectProblem(lines, toolspecFile, "tools[0].params[1].in", "path parameter id has no {id} hole in the path");
    expectProblem(lines, toolspecFile, "tools[2].params[0].required", "path parameter typename must be required: true");
  });

  test("base hosts outside the manifest's egress, malformed base URLs, and auth on a sealed server", () => {
    const { lines, toolspecFile } = lintMutated(({ toolspec }) => {
      toolspec!.baseUrl = "https://api.example.org";
      toolspec!.tools[0].baseUrl = "https://x.bubble.io";
      toolspec!.auth = { header: "Authorization", format: "Bearer {token}" };
      toolspec!.tools[2].params.push({ name: "Authorization", in: "header", type: "string" });
    });
    expectProblem(lines, toolspecFile, "baseUrl", "host api.example.org is not allowed by the manifest's egress (bubble.io, *.bubbleapps.io)");
    expectProblem(lines, toolspecFile, "tools[0].baseUrl", "host x.bubble.io is not allowed");
    // Cross-checks run once the toolspec is well-formed on its own.
    const malformed = lintMutated(({ toolspec }) => (toolspec!.tools[1].baseUrl = "https://yourapp.bubbleapps.io/api"));
    expectProblem(malformed.lines, malformed.toolspecFile, "tools[1].baseUrl", "must be exactly https://HOST");
    expectProblem(lines, toolspecFile, "auth", "a sealed server's toolspec takes no auth");
    expectProblem(lines, toolspecFile, "tools[2].params[2].name", "header parameter Authorization is the auth header");
  });

  test("name and version must match the folder and file", () => {
    const { lines, manifestFile, toolspecFile } = lintMutated(({ manifest, toolspec }) => {
      manifest.version = "0.2.0";
      toolspec!.version = "0.2.0";
    }, "bubbles");
    expectProblem(lines, manifestFile, "name", "bubble does not match its folder bubbles");
    expectProblem(lines, manifestFile, "version", "0.2.0 does not match the file name 0.1.0.yaml");
    expectProblem(lines, toolspecFile, "name", "bubble does not match its folder bubbles");
  });

  test("the compiled binary: `N ok` and exit 0, one line per problem and exit 1, usage errors exit 2", () => {
    if (!existsSync(GIGMCP)) throw new Error("dist/gigmcp is missing: run `make build` (make test does)");
    const root = scratch();
    for (const name of ["ably", "bubble", "slack"]) cpSync(join(MANIFESTS, name), join(root, "manifests", name), { recursive: true });
    const run = (args: string[]) => {
      const result = Bun.spawnSync([GIGMCP, "registry", "lint", ...args], { env: { PATH: process.env.PATH!, GIG_DATA_DIR: root } });
      return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
    };
    expect(run([root])).toEqual({ code: 0, stdout: "5 ok\n", stderr: "" });

    const failed = run([MANIFESTS]);
    expect(failed.code).toBe(1);
    const lines = failed.stdout.trim().split("\n");
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(line).toMatch(/^\S+\/(amplitude|mixpanel)\/0\.1\.0\.toolspec\.yaml: tools\[\d+\]\.params\[\d+\]\.name: expected a string, got the boolean/);
    expect(failed.stderr).toBe("4 problems in 2 of 77 files\n");
    expect(run([]).code).toBe(2);
  });
});

describe("signed index", () => {
  const indexBytes = () => new Uint8Array(readFileSync(join(SIGNED, "index.json")));
  const signature = () => readFileSync(join(SIGNED, "index.json.sig"), "utf8");
  const publicKey = () => readFileSync(join(SIGNED, "pubkey.hex"), "utf8").trim();
  /** The synthetic index was generated 2026-06-11; judge it a day later. */
  const dayAfter = () => Date.parse(syntheticIndex().generated) + DAY;

  test("the synthetic signed index verifies with its key and parses: 40 servers", async () => {
    expect(() => verifyIndexSignature(indexBytes(), signature(), [publicKey()])).not.toThrow();
    const registry = openRegistry(registrySettings(join(SIGNED, "index.json"), [publicKey()]), { now: dayAfter });
    const index = await registry.index();
    expect(Object.keys(index.servers)).toHaveLength(40);
    expect(index.generated.toISOString()).toBe("2026-06-11T00:00:00.000Z");
  });

  test("tampering is refused by the signature check, before any parsing", async () => {
    const verify = (bytes: Uint8Array, sig = signature(), keys = [publicKey()]) => () => verifyIndexSignature(bytes, sig, keys);
    const flipped = indexBytes();
    flipped[1000]! ^= 0x01;
    expect(verify(flipped)).toThrow("does not verify with any trusted key");
    expect(verify(indexBytes(), signature(), [generateSigningKey().publicKeyHex])).toThrow("does not verify with any trusted key");
    expect(verify(indexBytes(), signature().slice(0, 100))).toThrow("not 128 hex digits");
    expect(verify(indexBytes(), "zz".repeat(64))).toThrow("not 128 hex digits");

    // Through the client, an index that is tampered and also not JSON fails on the signature, never on parsing.
    const folder = scratch();
    const broken = indexBytes();
    broken[0] = "X".charCodeAt(0);
    writeFileSync(join(folder, "index.json"), broken);
    const cases: [signature: string, key: string, error: RegExp][] = [
      [signature(), publicKey(), /^the signature of .* does not verify with any trusted key/],
      [signature(), generateSigningKey().publicKeyHex, /^the signature of .* does not verify with any trusted key/],
      [signature().slice(0, 100), publicKey(), /^the signature of .* is not 128 hex digits/],
      ["zz".repeat(64), publicKey(), /^the signature of .* is not 128 hex digits/],
    ];
    for (const [sig, key, error] of cases) {
      writeFileSync(join(folder, "index.json.sig"), sig);
      await expect(openRegistry(registrySettings(join(folder, "index.json"), [key]), { now: dayAfter }).index()).rejects.toThrow(error);
    }
  });

  test("any of several trusted keys verifies (key rotation)", async () => {
    const registry = openRegistry(registrySettings(join(SIGNED, "index.json"), [generateSigningKey().publicKeyHex, publicKey()]), { now: dayAfter });
    expect((await registry.index()).sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  test("a signed index is still parsed strictly: an unknown manifest field is refused with its path", async () => {
    const key = generateSigningKey();
    const document = syntheticIndex();
    document.servers.ably!.versions["0.1.0"]!.homepage = "https://ably.com";
    const path = writeSignedIndex(scratch(), document, key);
    const registry = openRegistry(registrySettings(path, [key.publicKeyHex]), { now: dayAfter });
    await expect(registry.index()).rejects.toThrow('servers.ably.versions["0.1.0"].homepage: unknown field');
  });

  test("rollback: an index older than the one verified before is refused; a newer one is accepted", async () => {
    const key = generateSigningKey();
    const folder = scratch();
    const settings = registrySettings(join(folder, "index.json"), [key.publicKeyHex]);
    const at = (generated: string) => ({ ...syntheticIndex(), generated });
    const now = () => Date.parse("2026-06-20T00:00:00Z");

    writeSignedIndex(folder, at("2026-06-15T00:00:00Z"), key);
    await openRegistry(settings, { now }).index();
    expect(readFileSync(join(settings.dataDir, "registry/index.json"))).toEqual(readFileSync(join(folder, "index.json")));
    expect(readFileSync(join(settings.dataDir, "registry/index.json.sig"), "utf8")).toBe(readFileSync(join(folder, "index.json.sig"), "utf8"));

    writeSignedIndex(folder, at("2026-06-14T00:00:00Z"), key);
    await expect(openRegistry(settings, { now }).index()).rejects.toThrow(/refusing a rollback: .* generated 2026-06-14T00:00:00Z, before the one already verified here \(2026-06-15T00:00:00Z\)/);

    writeSignedIndex(folder, at("2026-06-16T00:00:00Z"), key);
    expect((await openRegistry(settings, { now }).index()).generated.toISOString()).toBe("2026-06-16T00:00:00.000Z");
  });

  test("freeze: an index older than the maximum age is refused, as is one from the future", async () => {
    const key = generateSigningKey();
    const folder = scratch();
    const settings = registrySettings(join(folder, "index.json"), [key.publicKeyHex], 7 * DAY);
    writeSignedIndex(folder, { ...syntheticIndex(), generated: "2026-06-01T00:00:00Z" }, key);
    const after = (days: number) => () => Date.parse("2026-06-01T00:00:00Z") + days * DAY;
    await expect(openRegistry(settings, { now: after(8) }).index()).rejects.toThrow(/refusing a frozen index: .*more than GIG_REGISTRY_MAX_AGE \(7d\) ago/);
    await expect(openRegistry(settings, { now: after(-1) }).index()).rejects.toThrow("in the future");
    expect((await openRegistry(settings, { now: after(6) }).index()).generated.toISOString()).toBe("2026-06-01T00:00:00.000Z");
  });

  test("references: name, name@version, sha256:digest, and clear errors", async () => {
    const registry = openRegistry(registrySettings(join(SIGNED, "index.json"), [publicKey()]), { now: dayAfter });
    expect((await registry.resolve("hackernews")).name).toBe("hackernews");
    expect((await registry.resolve("ably@0.1.0")).version).toBe("0.1.0");
    const ably = await registry.resolve("ably");
    expect(await registry.resolve(ably.image.digest)).toEqual(ably);
    await expect(registry.resolve("ably@")).rejects.toThrow("nothing after @");
    await expect(registry.resolve("nosuch")).rejects.toThrow("no server named nosuch");
    await expect(registry.resolve("constructor")).rejects.toThrow("no server named constructor");
    await expect(registry.resolve("ably@9.9.9")).rejects.toThrow("ably has no version 9.9.9 in the registry; it has 0.1.0");
    await expect(registry.resolve("Ably")).rejects.toThrow("expected NAME, NAME@VERSION or sha256:DIGEST");
    await expect(registry.resolve("sha256:abc")).rejects.toThrow("64 lowercase hex digits");
    await expect(registry.resolve(`sha256:${"1".repeat(64)}`)).rejects.toThrow("no server in the registry has the image");
    // The two placeholder images share the all-zero digest.
    await expect(registry.resolve(`sha256:${"0".repeat(64)}`)).rejects.toThrow(/belongs to (borneo@0\.1\.0, waboxapp@0\.1\.0|waboxapp@0\.1\.0, borneo@0\.1\.0): name one of them/);
    expect((await registry.search("google")).map((manifest) => manifest.name)).toEqual(["google-analytics", "google-maps", "googledrive"]);
    expect(await registry.search()).toHaveLength(40);
  });

  test("an http URL source works; a missing signature and an oversized index are refused", async () => {
    const key = generateSigningKey();
    const folder = scratch();
    writeSignedIndex(folder, syntheticIndex(), key);
    const server = serveFolder(folder);
    try {
      const registry = openRegistry(registrySettings(`${server.url}/index.json`, [key.publicKeyHex]), { now: dayAfter });
      expect((await registry.resolve("slack")).tools).toHaveLength(18);
      rmSync(join(folder, "index.json.sig"));
      const unsigned = openRegistry(registrySettings(`${server.url}/index.json`, [key.publicKeyHex]), { now: dayAfter });
      await expect(unsigned.index()).rejects.toThrow(`could not download ${server.url}/index.json.sig: HTTP 404`);
    } finally {
      await server.stop();
    }
    const huge = join(scratch(), "index.json");
    writeFileSync(huge, "{}");
    truncateSync(huge, MAX_INDEX_BYTES + 1);
    writeFileSync(`${huge}.sig`, key.sign(new Uint8Array()));
    await expect(openRegistry(registrySettings(huge, [key.publicKeyHex])).index()).rejects.toThrow("is larger than 33554432 bytes");
  });

  test("without a configured URL or key, the error says which variable to set", async () => {
    await expect(openRegistry({ ...registrySettings("", []), registryUrl: undefined }).index()).rejects.toThrow("set GIG_REGISTRY_URL");
    await expect(openRegistry(registrySettings(join(SIGNED, "index.json"), [])).index()).rejects.toThrow("set GIG_REGISTRY_PUBKEY");
  });
});

describe("install helpers", () => {
  test("egress: a manifest wildcard reaches any depth, so install turns *.x into the proxy's **.x", () => {
    const dynamics = catalogManifest("dynamics365");
    expect(egressForProxy(dynamics)).toEqual(["**.dynamics.com", "login.microsoftonline.com"]);
    // The catalog's own toolspec calls a host three labels under the wildcard.
    expect(egressAllows(dynamics, "org.api.crm.dynamics.com")).toBe(true);
    expect(matchesEgress(dynamics.entitlements.egress, "org.api.crm.dynamics.com", 443)).toBe(false);
    expect(egressAllows(dynamics, "dynamics.com")).toBe(false);
    expect(egressAllows(dynamics, "evil.example")).toBe(false);
  });

  test("placeholder digests pass lint but are not installable", () => {
    expect(() => assertInstallable(catalogManifest("waboxapp"))).toThrow("all-zero placeholder");
    expect(() => assertInstallable(catalogManifest("borneo"))).toThrow("all-zero placeholder");
    expect(() => assertInstallable(catalogManifest("ably"))).not.toThrow();
  });

  test("consent summary: tier, hosts, and how each credential is injected", () => {
    const sealed = consentSummary(catalogManifest("bubble")).join("\n");
    expect(sealed).toContain("Tier: sealed");
    expect(sealed).toContain("Network access: bubble.io, *.bubbleapps.io (any host under bubbleapps.io)");
    expect(sealed).toContain("bubble_api_key (api_key): the egress proxy sets header Authorization: Bearer {token}");
    const entrusted = consentSummary(catalogManifest("alchemy")).join("\n");
    expect(entrusted).toContain("Tier: entrusted");
    expect(entrusted).toContain("alchemy_api_key (api_key): the server receives the secret itself in env ALCHEMY_API_KEY");
    expect(consentSummary(catalogManifest("hackernews"))).toContain("Credentials: none");
  });

  test("consent hash: display fields, version and order do not count; image, tier, hosts, credentials and tools do", () => {
    const base = catalogManifest("salesforce");
    const hash = consentHash(base);
    const changed = (edit: (manifest: Manifest) => void) => {
      const copy = structuredClone(base);
      edit(copy);
      return consentHash(copy);
    };
    expect(changed((m) => ((m.displayName = "Other"), (m.category = "data"), (m.version = "0.2.0"), (m.source.tag = "v0.2.0")))).toBe(hash);
    expect(changed((m) => (m.tools.reverse(), m.entitlements.egress.reverse()))).toBe(hash);
    expect(changed((m) => (m.image.digest = `sha256:${"1".repeat(64)}`))).not.toBe(hash);
    expect(changed((m) => (m.tier = "entrusted"))).not.toBe(hash);
    expect(changed((m) => m.entitlements.egress.push("api.example.com"))).not.toBe(hash);
    expect(changed((m) => (m.credentials![0]!.inject.format = "Token {token}"))).not.toBe(hash);
    expect(changed((m) => (m.credentials![0]!.scopes = ["api"]))).not.toBe(hash);
    expect(changed((m) => (m.tools[0]!.default = !m.tools[0]!.default))).not.toBe(hash);
  });
});
