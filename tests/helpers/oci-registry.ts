/**
 * Real registries for OCI pull tests: the CNCF Distribution server
 * (/usr/bin/docker-registry) on loopback, open or behind htpasswd or token
 * auth (with a small token server signing ES256 JWTs); images written by hand
 * as OCI layouts (hostile tarballs included) and pushed with skopeo; and a
 * fake front that proxies to a registry while failing, cutting or redirecting
 * chosen requests.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { Header } from "tar";
import { freePort, tempDir } from "./gateway.ts";

const REGISTRY_BINARY = "/usr/bin/docker-registry";

export interface TestRegistry {
  /** "127.0.0.1:PORT", as an image reference starts. */
  host: string;
  url: string;
  /** Filesystem storage root; blobs live under docker/registry/v2/blobs. */
  rootDir: string;
  stop(): Promise<void>;
}

export type RegistryAuthConfig =
  | { htpasswd: string }
  | { token: { realm: string; service: string; issuer: string; rootCertBundle: string } };

/** Starts docker-registry on a free loopback port and waits until /v2/ answers. */
export async function startRegistry(options: { rootDir?: string; auth?: RegistryAuthConfig } = {}): Promise<TestRegistry> {
  const rootDir = options.rootDir ?? tempDir("gigmcp-oci-registry-");
  const configDir = tempDir("gigmcp-oci-config-");
  const port = freePort();
  const auth = !options.auth
    ? ""
    : "htpasswd" in options.auth
      ? `auth:\n  htpasswd:\n    realm: gigmcp-test\n    path: ${options.auth.htpasswd}\n`
      : `auth:\n  token:\n    realm: ${options.auth.token.realm}\n    service: ${options.auth.token.service}\n    issuer: ${options.auth.token.issuer}\n    rootcertbundle: ${options.auth.token.rootCertBundle}\n`;
  const config = join(configDir, "config.yml");
  writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${rootDir}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: gigmcp-test-secret\n${auth}`,
  );
  // A log file, not a pipe: an unread pipe fills up and stalls the registry.
  const logPath = join(configDir, "registry.log");
  const child = Bun.spawn([REGISTRY_BINARY, "serve", config], { stdout: "ignore", stderr: Bun.file(logPath) });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (true) {
    const status = await fetch(`${url}/v2/`).then((response) => response.status, () => 0);
    if (status === 200 || status === 401) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill();
      throw new Error(`docker-registry did not start: ${readFileSync(logPath, "utf8")}`);
    }
    await Bun.sleep(50);
  }
  return {
    host: `127.0.0.1:${port}`,
    url,
    rootDir,
    async stop() {
      child.kill();
      await child.exited;
      rmSync(configDir, { recursive: true, force: true });
    },
  };
}

/** An htpasswd file (bcrypt, as docker-registry requires) for one user. */
export async function writeHtpasswd(username: string, password: string): Promise<string> {
  const path = join(tempDir("gigmcp-oci-htpasswd-"), "htpasswd");
  writeFileSync(path, `${username}:${await Bun.password.hash(password, { algorithm: "bcrypt", cost: 4 })}\n`);
  return path;
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate of the signing key, for the registry's rootcertbundle. */
  certPath: string;
  /** Query strings and Authorization headers of the token requests received. */
  requests: { scope: string | null; authorization: string | null }[];
  stop(): void;
}

const base64url = (bytes: Uint8Array | string) => Buffer.from(bytes).toString("base64url");

function pemBody(pem: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64"));
}

/** The key ID Distribution derives from a public key: SHA-256 of the SPKI, 240 bits, base32 in groups of four. */
function distributionKeyId(spkiDer: Uint8Array): string {
  const bytes = createHash("sha256").update(spkiDer).digest().subarray(0, 30);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const byte of bytes) bits += byte.toString(2).padStart(8, "0");
  let text = "";
  for (let at = 0; at < bits.length; at += 5) text += alphabet[parseInt(bits.slice(at, at + 5), 2)];
  return text.match(/.{4}/g)!.join(":");
}

/**
 * A token server in the style of Docker's: GET /token?service&scope with Basic
 * credentials answers a JWT (ES256, signed with a throwaway key whose
 * certificate the registry trusts) granting pull on the requested repository.
 */
export async function startTokenServer(users: Record<string, string>): Promise<TokenServer> {
  const dir = tempDir("gigmcp-oci-token-");
  const run = (args: string[]) => {
    const result = Bun.spawnSync(["openssl", ...args], { cwd: dir });
    if (result.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr.toString()}`);
    return result.stdout.toString();
  };
  run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=gigmcp test token signer"]);
  const publicKeyPem = run(["x509", "-in", "cert.pem", "-pubkey", "-noout"]);
  const keyId = distributionKeyId(pemBody(publicKeyPem));
  const privateKey = await crypto.subtle.importKey("pkcs8", pemBody(readFileSync(join(dir, "key.pem"), "utf8")), { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const service = "gigmcp-test-registry";
  const issuer = "gigmcp-test-issuer";
  const requests: TokenServer["requests"] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const url = new URL(request.url);
      const authorization = request.headers.get("authorization");
      const scope = url.searchParams.get("scope");
      requests.push({ scope, authorization });
      const [user, password] = authorization?.startsWith("Basic ") ? Buffer.from(authorization.slice(6), "base64").toString().split(":") : [];
      if (!user || users[user] !== password) return new Response("unauthorized", { status: 401 });
      const [type, name, actions] = (scope ?? "").split(":");
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        iss: issuer,
        sub: user,
        aud: url.searchParams.get("service"),
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: randomBytes(8).toString("hex"),
        access: type === "repository" && name ? [{ type, name, actions: (actions ?? "").split(",") }] : [],
      };
      const signingInput = `${base64url(JSON.stringify({ typ: "JWT", alg: "ES256", kid: keyId }))}.${base64url(JSON.stringify(claims))}`;
      const signature = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, new TextEncoder().encode(signingInput)));
      return Response.json({ token: `${signingInput}.${base64url(signature)}`, expires_in: 300 });
    },
  });
  return {
    realm: `http://127.0.0.1:${server.port}/token`,
    service,
    issuer,
    certPath: join(dir, "cert.pem"),
    requests,
    stop() {
      server.stop(true);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TarEntry {
  path: string;
  type?: "File" | "Directory" | "SymbolicLink" | "Link" | "CharacterDevice" | "FIFO";
  mode?: number;
  data?: string | Uint8Array;
  linkpath?: string;
}

/** Raw tar headers; paths are written exactly as given, hostile ones included. */
export function tarHeader(entry: TarEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  const type = entry.type ?? "File";
  new Header({
    path: entry.path,
    type,
    mode: entry.mode ?? (type === "Directory" ? 0o755 : 0o644),
    size,
    linkpath: entry.linkpath,
    uid: 0,
    gid: 0,
    mtime: new Date(0),
    ...(type === "CharacterDevice" ? { devmaj: 1, devmin: 3 } : {}),
  }).encode(block, 0);
  return block;
}

export function tarball(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const data = Buffer.from(entry.data ?? "");
    parts.push(tarHeader(entry, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export type Compression = "gzip" | "zstd" | "none";

export interface Layer {
  bytes: Buffer;
  mediaType: string;
  /** sha256 of the uncompressed tar, for the config's rootfs. */
  diffId: string;
}

export function layer(entries: TarEntry[], compression: Compression = "gzip"): Layer {
  const tar = tarball(entries);
  return compressedLayer(tar, compression, sha256(tar));
}

export function compressedLayer(tar: Buffer, compression: Compression, diffId: string): Layer {
  const bytes = compression === "gzip" ? gzipSync(tar) : compression === "zstd" ? zstdCompressSync(tar) : tar;
  const suffix = compression === "gzip" ? "+gzip" : compression === "zstd" ? "+zstd" : "";
  return { bytes, mediaType: `application/vnd.oci.image.layer.v1.tar${suffix}`, diffId };
}

/**
 * A gzip layer holding `app/big`, `size` zero bytes, then `app/server`: built
 * from concatenated gzip members so that it costs about a thousandth of its
 * expanded size to make, store and serve.
 */
export function zeroBombLayer(size: number): Layer {
  const chunk = 1024 * 1024;
  const zeros = gzipSync(Buffer.alloc(chunk), { level: 9 });
  const members: Buffer[] = [gzipSync(tarHeader({ path: "app/big" }, size))];
  for (let left = size; left > 0; left -= chunk) members.push(left >= chunk ? zeros : gzipSync(Buffer.alloc(left)));
  const padding = Buffer.alloc((512 - (size % 512)) % 512);
  members.push(gzipSync(Buffer.concat([padding, tarball([{ path: "app/server", mode: 0o755, data: "#!/bin/sh\n" }])])));
  return { bytes: Buffer.concat(members), mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", diffId: `sha256:${"0".repeat(64)}` };
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** An OCI image layout on disk that images are written into, then pushed with skopeo. */
export class OciLayout {
  readonly dir = tempDir("gigmcp-oci-layout-");

  constructor() {
    mkdirSync(join(this.dir, "blobs", "sha256"), { recursive: true });
    writeFileSync(join(this.dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  }

  blob(bytes: Uint8Array, mediaType: string): Descriptor {
    const digest = sha256(bytes);
    writeFileSync(join(this.dir, "blobs", "sha256", digest.slice(7)), bytes);
    return { mediaType, digest, size: bytes.length };
  }

  image(layers: Layer[], platform = { os: "linux", architecture: "amd64" }): Descriptor {
    const config = this.blob(
      Buffer.from(JSON.stringify({ ...platform, rootfs: { type: "layers", diff_ids: layers.map((item) => item.diffId) }, config: {} })),
      "application/vnd.oci.image.config.v1+json",
    );
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config,
      layers: layers.map((item) => this.blob(item.bytes, item.mediaType)),
    };
    return this.blob(Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
  }

  index(images: { manifest: Descriptor; platform: { os: string; architecture: string } }[]): Descriptor {
    const index = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: images.map((item) => ({ ...item.manifest, platform: item.platform })),
    };
    return this.blob(Buffer.from(JSON.stringify(index)), index.mediaType);
  }

  /**
   * Pushes `top` (a manifest or an index) to registry/repository:latest and
   * returns the digest the registry holds. `dockerFormat` converts to Docker
   * v2 media types on the way.
   */
  push(top: Descriptor, registry: TestRegistry, repository: string, options: { dockerFormat?: boolean } = {}): string {
    writeFileSync(join(this.dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ ...top, annotations: { "org.opencontainers.image.ref.name": "latest" } }] }));
    const digestFile = join(this.dir, "pushed-digest");
    const args = ["copy", "--quiet", "--insecure-policy", "--dest-tls-verify=false", "--multi-arch", "all", "--digestfile", digestFile];
    args.push(...(options.dockerFormat ? ["--format", "v2s2"] : ["--preserve-digests"]));
    const result = Bun.spawnSync(["skopeo", ...args, `oci:${this.dir}:latest`, `docker://${registry.host}/${repository}:latest`]);
    if (result.exitCode !== 0) throw new Error(`skopeo copy failed: ${result.stderr.toString()}`);
    return readFileSync(digestFile, "utf8").trim();
  }
}

/** Where the registry keeps a blob's bytes. */
export function registryBlobPath(registry: TestRegistry, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return join(registry.rootDir, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

export interface FrontProxy {
  host: string;
  requests: RecordedRequest[];
  stop(): void;
}

/**
 * Answers a request itself when `intercept` returns a Response; otherwise
 * forwards it to `upstream` (headers and all) and returns the answer.
 */
export type Intercept = (request: Request, forward: () => Promise<Response>) => Promise<Response | undefined> | Response | undefined;

export function startFrontProxy(upstream: string, intercept: Intercept = () => undefined, hostname = "127.0.0.1"): FrontProxy {
  const requests: RecordedRequest[] = [];
  const server = Bun.serve({
    hostname,
    port: 0,
    async fetch(request) {
      const url = new URL(request.url);
      requests.push({ method: request.method, path: url.pathname, headers: Object.fromEntries(request.headers) });
      const forward = async () => {
        const headers = new Headers(request.headers);
        headers.delete("host");
        const answer = await fetch(`${upstream}${url.pathname}${url.search}`, { method: request.method, headers, redirect: "manual" });
        return new Response(answer.body, { status: answer.status, headers: answer.headers });
      };
      return (await intercept(request, forward)) ?? forward();
    },
  });
  return { host: `${hostname}:${server.port}`, requests, stop: () => server.stop(true) };
}
