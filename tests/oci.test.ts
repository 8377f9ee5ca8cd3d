import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseChallenges } from "../src/oci/auth.ts";
import { checkTransport } from "../src/oci/http.ts";
import { OciError, pullEntrypoint, type PullOptions } from "../src/oci/index.ts";
import { openVerifiedEntrypoint } from "../src/sandbox/entrypoint.ts";
import type { Server } from "../src/store/index.ts";
import { tempDir } from "./helpers/gateway.ts";
import {
  compressedLayer,
  layer,
  OciLayout,
  registryBlobPath,
  sha256,
  startFrontProxy,
  startRegistry,
  startTokenServer,
  tarball,
  writeHtpasswd,
  zeroBombLayer,
  type FrontProxy,
  type Intercept,
  type Layer,
  type TarEntry,
  type TestRegistry,
  type TokenServer,
} from "./helpers/oci-registry.ts";

const SERVER = "#!/bin/sh\necho amd64 server\n";
const dir = (path: string): TarEntry => ({ path, type: "Directory" });
const file = (path: string, data: string, mode = 0o755): TarEntry => ({ path, data, mode });
const symlink = (path: string, linkpath: string): TarEntry => ({ path, type: "SymbolicLink", linkpath });
const serverLayer = (data = SERVER, compression: "gzip" | "zstd" | "none" = "gzip") => layer([dir("app/"), file("app/server", data)], compression);

let registry: TestRegistry;
let basicRegistry: TestRegistry;
let tokenRegistry: TestRegistry;
let tokens: TokenServer;
const layout = new OciLayout();
const cleanup: string[] = [layout.dir];
/** Pinned digest of each test repository. */
const digests: Record<string, string> = {};
/** Layer blobs of some repositories, for tests that tamper with or intercept them. */
const layers: Record<string, Layer> = {};
let amd64Manifest = "";

function push(repository: string, imageLayers: Layer[], platform?: { os: string; architecture: string }): void {
  digests[repository] = layout.push(layout.image(imageLayers, platform), registry, repository);
}

function store(): string {
  const path = tempDir("gigmcp-oci-store-");
  cleanup.push(path);
  return path;
}

function pull(repository: string, options: Partial<PullOptions> & { host?: string } = {}) {
  const { host = registry.host, ...rest } = options;
  return pullEntrypoint({
    image: `${host}/${repository}`,
    digest: digests[repository]!,
    entrypoint: "/app/server",
    storeDir: store(),
    plainHttp: true,
    retry: { baseDelayMs: 5 },
    ...rest,
  });
}

/** Flips one byte of a file in place (same size, different content). */
function flipByte(path: string, at: number): void {
  const bytes = readFileSync(path);
  bytes[at] = bytes[at]! ^ 0x01;
  writeFileSync(path, bytes);
}

function filesUnder(root: string): { path: string; size: number }[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => ({ path: join(entry.parentPath, entry.name), size: statSync(join(entry.parentPath, entry.name)).size }));
}

beforeAll(async () => {
  registry = await startRegistry();
  cleanup.push(registry.rootDir);

  layers.plain = layer([dir("app/"), file("app/server", SERVER), file("app/README", "docs", 0o644)]);
  push("plain", [layers.plain]);
  digests.docker = layout.push(layout.image([serverLayer()]), registry, "docker", { dockerFormat: true });
  layers.big = layer([dir("app/"), { path: "app/payload.bin", data: randomBytes(768 * 1024) }, file("app/server", SERVER)]);
  push("big", [layers.big]);

  const arm = layout.image([serverLayer("#!/bin/sh\necho arm64\n")], { os: "linux", architecture: "arm64" });
  const s390x = layout.image([serverLayer("#!/bin/sh\necho s390x\n")], { os: "linux", architecture: "s390x" });
  const amd = layout.image([serverLayer()]);
  amd64Manifest = amd.digest;
  const armPlatform = { os: "linux", architecture: "arm64" };
  digests.multi = layout.push(layout.index([{ manifest: arm, platform: armPlatform }, { manifest: amd, platform: { os: "linux", architecture: "amd64" } }]), registry, "multi");
  digests["no-amd64"] = layout.push(layout.index([{ manifest: arm, platform: armPlatform }, { manifest: s390x, platform: { os: "linux", architecture: "s390x" } }]), registry, "no-amd64");
  push("arm-only", [serverLayer()], armPlatform);

  const v1 = serverLayer("#!/bin/sh\necho v1\n");
  push("whiteout-delete", [v1, layer([{ path: "app/.wh.server" }], "zstd")]);
  push("whiteout-then-new", [v1, layer([{ path: "app/.wh.server" }], "zstd"), layer([file("app/server", "#!/bin/sh\necho v3\n")], "none")]);
  push("opaque", [layer([dir("app/"), file("app/server", "v1"), file("app/other", "x")]), layer([dir("app/"), { path: "app/.wh..wh..opq" }, file("app/new", "n")])]);
  push("replace", [v1, serverLayer("#!/bin/sh\necho v2\n", "zstd")]);
  push("dir-replaced", [layer([dir("app/"), dir("app/server/"), file("app/server/inner", "x")]), layer([file("app/server", "#!/bin/sh\necho file\n")], "none")]);
  push("whole-dir-deleted", [v1, layer([{ path: ".wh.app" }])]);

  push("symlinks", [
    layer([dir("opt/srv/versions/1/"), file("opt/srv/versions/1/server", SERVER), symlink("opt/srv/current", "versions/1")]),
    layer([dir("usr/local/bin/"), symlink("usr/local/bin/server", "/opt/srv/current/server"), symlink("bin", "usr/local/bin")]),
  ]);
  push("hardlink", [layer([dir("opt/"), file("opt/real", SERVER), dir("app/"), { path: "app/server", type: "Link", linkpath: "opt/real" }])]);
  push("symlink-inside", [layer([dir("etc/"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644), dir("app/"), symlink("app/server", "/etc/passwd")])]);

  // Hostile archives: each must be refused, naming the entry.
  push("traversal", [layer([dir("app/"), file("app/server", SERVER), file("../x", "evil")])]);
  push("absolute", [layer([dir("app/"), file("app/server", SERVER), file("/etc/evil", "evil")])]);
  push("symlink-climbs", [layer([dir("app/"), symlink("app/server", "../../x")])]);
  push("symlink-absolute-missing", [layer([dir("app/"), symlink("app/server", "/etc/passwd")])]);
  push("symlink-escape-via-link", [layer([symlink("d", "/"), dir("d/e/"), symlink("d/e/s", "../../y"), dir("app/"), symlink("app/server", "/e/s")])]);
  push("symlink-loop", [layer([dir("app/"), symlink("app/server", "loop"), symlink("app/loop", "server")])]);
  push("device", [layer([dir("app/"), { path: "app/server", type: "CharacterDevice", mode: 0o666 }])]);
  push("fifo", [layer([dir("app/"), { path: "app/server", type: "FIFO", mode: 0o644 }])]);
  push("setuid", [layer([dir("app/"), file("app/server", SERVER, 0o4755)])]);
  push("setgid", [layer([dir("app/"), file("app/server", SERVER, 0o2755)])]);
  push("hardlink-climbs", [layer([dir("app/"), { path: "app/server", type: "Link", linkpath: "../../etc/passwd" }])]);
  push("hardlink-absolute", [layer([dir("app/"), { path: "app/server", type: "Link", linkpath: "/etc/passwd" }])]);
  push("hardlink-missing", [layer([dir("app/"), { path: "app/server", type: "Link", linkpath: "opt/nothing" }])]);
  layers.bomb = zeroBombLayer(1_000_000_000);
  push("bomb", [layers.bomb]);
  push("not-gzip", [compressedLayer(tarball([file("app/server", SERVER)]), "none", "")].map((item) => ({ ...item, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip" })));

  layers["tamper-layer"] = serverLayer("#!/bin/sh\necho tamper me\n");
  push("tamper-layer", [layers["tamper-layer"]]);
  push("tamper-manifest", [serverLayer("#!/bin/sh\necho tamper my manifest\n")]);

  const htpasswd = await writeHtpasswd("bob", "hunter2");
  cleanup.push(join(htpasswd, ".."));
  basicRegistry = await startRegistry({ rootDir: registry.rootDir, auth: { htpasswd } });
  tokens = await startTokenServer({ alice: "s3cret" });
  tokenRegistry = await startRegistry({
    rootDir: registry.rootDir,
    auth: { token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } },
  });
});

afterAll(async () => {
  await Promise.all([registry?.stop(), basicRegistry?.stop(), tokenRegistry?.stop()]);
  tokens?.stop();
  for (const path of cleanup) rmSync(path, { recursive: true, force: true });
});

describe("pull by digest", () => {
  test("stores the entrypoint under its sha256, read-only and executable", async () => {
    const storeDir = store();
    const pulled = await pull("plain", { storeDir });
    expect(readFileSync(pulled.path, "utf8")).toBe(SERVER);
    expect(pulled.path).toBe(join(storeDir, "entrypoints", pulled.sha256));
    expect(pulled.sha256).toBe(sha256(Buffer.from(SERVER)).slice(7));
    expect(pulled.size).toBe(SERVER.length);
    expect(pulled.manifestDigest).toBe(digests.plain!);
    expect(statSync(pulled.path).mode & 0o7777).toBe(0o555);
    closeSync(openVerifiedEntrypoint(installedAs(pulled), pulled.path));
    // Only the store's own layout is left behind: no temp or partial files.
    expect(readdirSync(join(storeDir, "tmp"))).toEqual([]);
  });

  test("Docker v2 manifests and layer media types are read too", async () => {
    const manifest = await fetch(`${registry.url}/v2/docker/manifests/${digests.docker}`, { headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" } });
    expect(((await manifest.json()) as { mediaType: string }).mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(readFileSync((await pull("docker")).path, "utf8")).toBe(SERVER);
  });

  test("an index yields its linux/amd64 image", async () => {
    const pulled = await pull("multi");
    expect(readFileSync(pulled.path, "utf8")).toBe(SERVER);
    expect(pulled.manifestDigest).toBe(amd64Manifest);
  });

  test("an index without linux/amd64 is refused, listing what it offers", async () => {
    await expect(pull("no-amd64")).rejects.toThrow(/has no linux\/amd64 image \(it offers: linux\/arm64, linux\/s390x\)/);
  });

  test("a single image built for another platform is refused", async () => {
    await expect(pull("arm-only")).rejects.toThrow(/built for linux\/arm64/);
  });

  test("a digest the registry does not hold is refused", async () => {
    await expect(pull("plain", { digest: `sha256:${"ab".repeat(32)}` })).rejects.toThrow(/is not in the registry; check the image name and the pinned digest/);
  });

  test("a manifest altered in registry storage does not match the pinned digest", async () => {
    const path = registryBlobPath(registry, digests["tamper-manifest"]!);
    const text = readFileSync(path, "utf8");
    // Change one hex digit of the config digest: still valid JSON, different bytes.
    const at = text.indexOf("sha256:") + 7;
    writeFileSync(path, text.slice(0, at) + (text[at] === "a" ? "b" : "a") + text.slice(at + 1));
    await expect(pull("tamper-manifest")).rejects.toThrow(/manifest sha256:[0-9a-f]{64} .* does not match its digest/);
  });

  test("a layer altered in registry storage is refused and not kept", async () => {
    flipByte(registryBlobPath(registry, sha256(layers["tamper-layer"]!.bytes)), 20);
    const storeDir = store();
    await expect(pull("tamper-layer", { storeDir })).rejects.toThrow(/blob sha256:[0-9a-f]{64} .* does not match its digest/);
    expect(filesUnder(storeDir).map((item) => item.path).filter((path) => !path.includes("blobs"))).toEqual([]);
  });

  test("bad arguments are refused before any request", async () => {
    const base = { digest: digests.plain!, entrypoint: "/app/server", storeDir: store(), plainHttp: true };
    await expect(pullEntrypoint({ ...base, image: `${registry.host}/plain:latest` })).rejects.toThrow(/carries a tag/);
    await expect(pullEntrypoint({ ...base, image: "acme/server" })).rejects.toThrow(/does not start with a registry host/);
    await expect(pullEntrypoint({ ...base, image: `${registry.host}/plain`, digest: "sha256:ABC" })).rejects.toThrow(/sha256:<64 lowercase hex digits>/);
    await expect(pullEntrypoint({ ...base, image: `${registry.host}/plain`, entrypoint: "app/server" })).rejects.toThrow(/must be an absolute path/);
    await expect(pullEntrypoint({ ...base, image: `${registry.host}/plain`, entrypoint: "/app/../etc/passwd" })).rejects.toThrow(/without "\.\."/);
  });
});

describe("layers", () => {
  test.each([
    ["whiteout-delete", /entrypoint \/app\/server is not in the image \(or a later layer deleted it\)/],
    ["opaque", /entrypoint \/app\/server is not in the image/],
    ["whole-dir-deleted", /entrypoint \/app\/server is not in the image/],
  ])("%s: a later layer's whiteout removes the entrypoint", async (repository, message) => {
    await expect(pull(repository)).rejects.toThrow(message);
  });

  test.each([
    ["whiteout-then-new", "#!/bin/sh\necho v3\n"],
    ["replace", "#!/bin/sh\necho v2\n"],
    ["dir-replaced", "#!/bin/sh\necho file\n"],
  ])("%s: the last layer's entrypoint wins (gzip, zstd and plain tar layers)", async (repository, content) => {
    expect(readFileSync((await pull(repository)).path, "utf8")).toBe(content);
  });

  test("symlinks are resolved inside the image: absolute targets from the image root, directory links too", async () => {
    expect(readFileSync((await pull("symlinks", { entrypoint: "/usr/local/bin/server" })).path, "utf8")).toBe(SERVER);
    expect(readFileSync((await pull("symlinks", { entrypoint: "/bin/server" })).path, "utf8")).toBe(SERVER);
    // An absolute target names the image's own file, never the host's.
    expect(readFileSync((await pull("symlink-inside")).path, "utf8")).toBe("root:x:0:0::/root:/bin/sh\n");
  });

  test("a hardlink to a file of the image yields that file", async () => {
    expect(readFileSync((await pull("hardlink")).path, "utf8")).toBe(SERVER);
  });
});

describe("hostile images", () => {
  test.each([
    ["traversal", /image refused: layer 1 of 1 \(sha256:[0-9a-f]{64}\): entry "\.\.\/x" has a "\.\." component/],
    ["absolute", /entry "\/etc\/evil" is an absolute path/],
    ["symlink-climbs", /entry "app\/server" is a symlink to "\.\.\/\.\.\/x", outside the image root/],
    ["symlink-absolute-missing", /entrypoint \/app\/server leads through symlink "app\/server" -> "\/etc\/passwd" to a path that is not in the image/],
    ["symlink-escape-via-link", /symlink "d\/e\/s" -> "\.\.\/\.\.\/y" leads outside the image root/],
    ["symlink-loop", /more than 40 symlinks on the way \(a loop\?\)/],
    ["device", /entrypoint \/app\/server is a character device \("app\/server"\), not a regular file/],
    ["fifo", /entrypoint \/app\/server is a fifo \("app\/server"\), not a regular file/],
    ["setuid", /has the setuid bit \(mode 4755\)/],
    ["setgid", /has the setgid bit \(mode 2755\)/],
    ["hardlink-climbs", /entry "app\/server" is a hardlink to "\.\.\/\.\.\/etc\/passwd", outside the image root/],
    ["hardlink-absolute", /entry "app\/server" is a hardlink to "\/etc\/passwd", outside the image root/],
    ["hardlink-missing", /is a hardlink to "opt\/nothing", which is not in the image/],
    ["not-gzip", /layer 1 of 1 .* is not valid gzip data/],
  ])("%s is refused", async (repository, message) => {
    const storeDir = store();
    const error = await pull(repository, { storeDir }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OciError);
    expect((error as Error).message).toMatch(message);
    expect(readdirSync(join(storeDir, "entrypoints"))).toEqual([]);
  });

  test("an entrypoint over the size limit is refused", async () => {
    await expect(pull("plain", { limits: { maxEntrypointBytes: 16 } })).rejects.toThrow(/is 28 bytes, more than the 16 allowed/);
  });

  test("a 1 GB zero bomb is stopped early, by ratio and by size, with nothing written", async () => {
    expect(layers.bomb!.bytes.length).toBeLessThan(1024 * 1024);
    const storeDir = store();
    const started = performance.now();
    await expect(pull("bomb", { storeDir })).rejects.toThrow(/expands more than 100 times its compressed size \(a decompression bomb\?\)/);
    await expect(pull("bomb", { storeDir, limits: { maxExpansionRatio: 1e9, maxLayerExpandedBytes: 32 * 1024 * 1024 } })).rejects.toThrow(/expands beyond 33554432 bytes/);
    expect(performance.now() - started).toBeLessThan(5000);
    // Only the ~1 MB compressed layer and small documents are on disk.
    expect(Math.max(...filesUnder(storeDir).map((item) => item.size))).toBeLessThan(2 * 1024 * 1024);
  });
});

describe("registry authentication", () => {
  test("Basic (htpasswd): pulls with the credentials, refuses without or with wrong ones", async () => {
    const pulled = await pull("plain", { host: basicRegistry.host, credentials: { username: "bob", password: "hunter2" } });
    expect(readFileSync(pulled.path, "utf8")).toBe(SERVER);
    await expect(pull("plain", { host: basicRegistry.host })).rejects.toThrow(/requires a username and password; pass credentials/);
    await expect(pull("plain", { host: basicRegistry.host, credentials: { username: "bob", password: "nope" } })).rejects.toThrow(/refused the username and password/);
  });

  test("Bearer (token server): one token for the whole pull, credentials sent to the realm only", async () => {
    const before = tokens.requests.length;
    const front = startFrontProxy(tokenRegistry.url);
    try {
      const pulled = await pull("plain", { host: front.host, credentials: { username: "alice", password: "s3cret" } });
      expect(readFileSync(pulled.path, "utf8")).toBe(SERVER);
      const issued = tokens.requests.slice(before);
      expect(issued).toEqual([{ scope: "repository:plain:pull", authorization: `Basic ${Buffer.from("alice:s3cret").toString("base64")}` }]);
      const authorizations = front.requests.map((request) => request.headers.authorization ?? "");
      expect(authorizations[0]).toBe(""); // anonymous first
      expect(authorizations.slice(1).every((value) => value.startsWith("Bearer "))).toBe(true);
      expect(authorizations.some((value) => value.startsWith("Basic"))).toBe(false);
    } finally {
      front.stop();
    }
    await expect(pull("plain", { host: tokenRegistry.host })).rejects.toThrow(/refused anonymous access .*; pass credentials/);
    await expect(pull("plain", { host: tokenRegistry.host, credentials: { username: "alice", password: "wrong" } })).rejects.toThrow(/refused the credentials/);
  });

  test("a blob redirect to another host is followed without the Authorization header", async () => {
    const blobHost = startFrontProxy(registry.url, undefined, "127.0.0.2");
    const front = startFrontProxy(tokenRegistry.url, (request) => {
      const path = new URL(request.url).pathname;
      if (!path.includes("/blobs/") || !request.headers.get("authorization")) return undefined;
      return new Response(null, { status: 307, headers: { location: `http://${blobHost.host}${path}` } });
    });
    try {
      const pulled = await pull("plain", { host: front.host, credentials: { username: "alice", password: "s3cret" } });
      expect(readFileSync(pulled.path, "utf8")).toBe(SERVER);
      expect(blobHost.requests.length).toBe(2); // config and layer
      expect(blobHost.requests.every((request) => request.headers.authorization === undefined)).toBe(true);
    } finally {
      front.stop();
      blobHost.stop();
    }
  });

  test("challenges are parsed, several per header and quoted values included", () => {
    expect(parseChallenges('Basic realm="x, y", Bearer realm="https://auth.example/token",service=reg,scope="repository:a/b:pull"')).toEqual([
      { scheme: "basic", params: { realm: "x, y" } },
      { scheme: "bearer", params: { realm: "https://auth.example/token", service: "reg", scope: "repository:a/b:pull" } },
    ]);
  });

  test("cleartext is refused to hosts other than loopback unless the caller asks for it", () => {
    const transport = { plainHttp: false, timeoutMs: 1000 };
    expect(() => checkTransport(new URL("http://registry.example/v2/"), transport)).toThrow(/must use https/);
    expect(() => checkTransport(new URL("http://127.0.0.1:5000/v2/"), transport)).not.toThrow();
    expect(() => checkTransport(new URL("http://[::1]:5000/v2/"), transport)).not.toThrow();
    expect(() => checkTransport(new URL("http://registry.example/v2/"), { ...transport, plainHttp: true })).not.toThrow();
  });
});

describe("network failures and the cache", () => {
  const isBlob = (request: Request, digest?: string) => new URL(request.url).pathname.includes(`/blobs/${digest ?? ""}`);

  async function withFront<T>(intercept: Intercept, run: (front: FrontProxy) => Promise<T>): Promise<T> {
    const front = startFrontProxy(registry.url, intercept);
    try {
      return await run(front);
    } finally {
      front.stop();
    }
  }

  test("5xx and 429 answers are retried with backoff", async () => {
    const failed = new Set<string>();
    const failFirst: Intercept = (request) => {
      const kind = new URL(request.url).pathname.includes("/manifests/") ? "manifest" : "blob";
      if (failed.has(kind)) return undefined;
      failed.add(kind);
      return new Response("busy", { status: kind === "manifest" ? 503 : 429, headers: { "retry-after": "0" } });
    };
    await withFront(failFirst, async (front) => {
      expect(readFileSync((await pull("plain", { host: front.host })).path, "utf8")).toBe(SERVER);
      expect(front.requests.filter((request) => request.path.includes("/manifests/")).length).toBe(2);
    });
  });

  test("a download cut short resumes with a Range request", async () => {
    const layerDigest = sha256(layers.big!.bytes);
    let cut = false;
    const cutOnce: Intercept = async (request, forward) => {
      if (cut || !isBlob(request, layerDigest)) return undefined;
      cut = true;
      const bytes = new Uint8Array(await (await forward()).arrayBuffer());
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(bytes.subarray(0, bytes.length >> 1));
          await Bun.sleep(50);
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-length": String(bytes.length) } });
    };
    await withFront(cutOnce, async (front) => {
      const pulled = await pull("big", { host: front.host });
      expect(readFileSync(pulled.path, "utf8")).toBe(SERVER);
      const layerRequests = front.requests.filter((request) => request.path.endsWith(layerDigest));
      expect(layerRequests.length).toBe(2);
      expect(layerRequests[1]!.headers.range).toMatch(/^bytes=[1-9]\d*-$/);
    });
  });

  test("an answer or a body that stalls past the timeout is retried", async () => {
    const layerDigest = sha256(layers.big!.bytes);
    const stalled = new Set<string>();
    const stallOnce: Intercept = async (request, forward) => {
      const path = new URL(request.url).pathname;
      const kind = path.includes("/manifests/") ? "manifest" : path.endsWith(layerDigest) ? "layer" : undefined;
      if (!kind || stalled.has(kind)) return undefined;
      stalled.add(kind);
      if (kind === "manifest") {
        await Bun.sleep(1000);
        return undefined;
      }
      const bytes = new Uint8Array(await (await forward()).arrayBuffer());
      // Half the body, then nothing: the connection stays open.
      return new Response(new ReadableStream<Uint8Array>({ start: (controller) => controller.enqueue(bytes.subarray(0, bytes.length >> 1)) }));
    };
    await withFront(stallOnce, async (front) => {
      const started = performance.now();
      expect(readFileSync((await pull("big", { host: front.host, timeoutMs: 200 })).path, "utf8")).toBe(SERVER);
      expect(performance.now() - started).toBeLessThan(900);
      expect(front.requests.filter((request) => request.path.endsWith(layerDigest)).at(-1)!.headers.range).toMatch(/^bytes=[1-9]\d*-$/);
    });
  });

  test("a blob longer than its descriptor is refused; one that stays short fails after the retries", async () => {
    const layerDigest = sha256(layers.big!.bytes);
    const longer: Intercept = async (request, forward) => {
      if (!isBlob(request, layerDigest)) return undefined;
      const bytes = Buffer.from(await (await forward()).arrayBuffer());
      return new Response(Buffer.concat([bytes, Buffer.from("trailing junk")]));
    };
    await withFront(longer, async (front) => {
      await expect(pull("big", { host: front.host })).rejects.toThrow(/is longer than the \d+ bytes its manifest declares/);
    });
    const shorter: Intercept = async (request, forward) => {
      if (!isBlob(request, layerDigest)) return undefined;
      const bytes = Buffer.from(await (await forward()).arrayBuffer());
      return new Response(bytes.subarray(0, 1000), { status: request.headers.get("range") ? 206 : 200, headers: { "content-range": `bytes 0-999/${bytes.length}` } });
    };
    await withFront(shorter, async (front) => {
      await expect(pull("big", { host: front.host, retry: { attempts: 3, baseDelayMs: 5 } })).rejects.toThrow(/failed after 3 tries: .*ended after \d+ of \d+ bytes/);
    });
  });

  test("a registry that keeps failing is given up on after the configured tries", async () => {
    await withFront(
      () => new Response("down", { status: 502 }),
      async (front) => {
        await expect(pull("plain", { host: front.host, retry: { attempts: 3, baseDelayMs: 5 } })).rejects.toThrow(/failed after 3 tries: .*502/);
      },
    );
  });

  test("a partial download left by an interrupted pull is resumed", async () => {
    const storeDir = store();
    const layerDigest = sha256(layers.big!.bytes);
    mkdirSync(join(storeDir, "tmp"), { recursive: true });
    writeFileSync(join(storeDir, "tmp", `${layerDigest.slice(7)}.partial`), layers.big!.bytes.subarray(0, 100_000));
    await withFront(
      () => undefined,
      async (front) => {
        expect(readFileSync((await pull("big", { host: front.host, storeDir })).path, "utf8")).toBe(SERVER);
        expect(front.requests.filter((request) => request.path.endsWith(layerDigest)).map((request) => request.headers.range)).toEqual(["bytes=100000-"]);
      },
    );
  });

  test("size limits: a manifest over 4 MiB, layers over the configured total", async () => {
    const huge: Intercept = (request) => (new URL(request.url).pathname.includes("/manifests/") ? new Response(Buffer.alloc(5 * 1024 * 1024, 0x20)) : undefined);
    await withFront(huge, async (front) => {
      await expect(pull("plain", { host: front.host })).rejects.toThrow(/is 5242880 bytes, more than the 4194304 allowed/);
    });
    await expect(pull("big", { limits: { maxLayersBytes: 1000 } })).rejects.toThrow(/image layers take \d+ bytes, more than the 1000 allowed/);
  });

  test("a second pull is served from the store; a damaged cached blob is fetched again", async () => {
    const storeDir = store();
    await withFront(
      () => undefined,
      async (front) => {
        const first = await pull("plain", { host: front.host, storeDir });
        const firstRequests = front.requests.length;
        expect(firstRequests).toBeGreaterThanOrEqual(3);
        const second = await pull("plain", { host: front.host, storeDir });
        expect(second).toEqual(first);
        expect(front.requests.length).toBe(firstRequests);

        const layerDigest = sha256(layers.plain!.bytes);
        flipByte(join(storeDir, "blobs", "sha256", layerDigest.slice(7)), 10);
        expect(await pull("plain", { host: front.host, storeDir })).toEqual(first);
        expect(front.requests.slice(firstRequests).map((request) => request.path)).toEqual([`/v2/plain/blobs/${layerDigest}`]);
      },
    );
  });
});

/** The server record an install of this pull writes, as far as the runners' entrypoint check reads it. */
function installedAs(pulled: { sha256: string }): Server {
  const installed = { reference: "plain@1.0.0", image: "plain", digest: digests.plain!, entrypoint: "/app/server", entrypointSha256: pulled.sha256, consentHash: "" };
  return { name: "plain", installed } as Server;
}

describe("the entrypoint check before every start", () => {
  test("refuses a changed, replaced or missing entrypoint, saying to reinstall", async () => {
    const pulled = await pull("plain");
    const server = installedAs(pulled);
    chmodSync(pulled.path, 0o755);
    writeFileSync(pulled.path, "#!/bin/sh\necho swapped\n");
    expect(() => openVerifiedEntrypoint(server, pulled.path)).toThrow(/the entrypoint of plain changed since it was installed .*: reinstall it with gigmcp registry install plain@1.0.0/);
    rmSync(pulled.path);
    symlinkSync("/bin/sh", pulled.path);
    expect(lstatSync(pulled.path).isSymbolicLink()).toBe(true);
    expect(() => openVerifiedEntrypoint(server, pulled.path)).toThrow(/was replaced by a symlink: reinstall/);
    rmSync(pulled.path);
    mkdirSync(pulled.path);
    expect(() => openVerifiedEntrypoint(server, pulled.path)).toThrow(/is no longer a regular file: reinstall/);
    rmSync(pulled.path, { recursive: true });
    expect(() => openVerifiedEntrypoint(server, pulled.path)).toThrow(/is missing: reinstall/);
  });
});
