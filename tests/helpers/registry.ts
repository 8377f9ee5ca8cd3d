/**
 * Registry test data: the shared catalog and synthetic signed index (read
 * from ../shared at test time, never copied into the repo), indexes signed
 * with a key made for the test, and a loopback HTTP server for them.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "./gateway.ts";

export const CATALOG = join(ROOT, "../shared/registry/catalog");
export const MANIFESTS = join(CATALOG, "manifests");
export const SIGNED = join(ROOT, "../shared/registry/synthetic-signed");

export interface SigningKey {
  publicKeyHex: string;
  /** The `.sig` file content for `bytes`: lowercase hex and a newline. */
  sign(bytes: Uint8Array): string;
}

export function generateSigningKey(): SigningKey {
  const { secretKey, publicKey } = ed25519.keygen();
  return {
    publicKeyHex: Buffer.from(publicKey).toString("hex"),
    sign: (bytes) => `${Buffer.from(ed25519.sign(bytes, secretKey)).toString("hex")}\n`,
  };
}

/** The synthetic index's document (40 servers), to re-sign with other `generated` times or contents. */
export function syntheticIndex(): { schemaVersion: number; generated: string; servers: Record<string, { latest: string; versions: Record<string, Record<string, unknown>> }> } {
  return JSON.parse(readFileSync(join(SIGNED, "index.json"), "utf8"));
}

/** Writes `document` (or raw bytes) as index.json + index.json.sig into `folder` (created if needed); returns the index path. */
export function writeSignedIndex(folder: string, document: unknown, key: SigningKey): string {
  mkdirSync(folder, { recursive: true });
  const bytes = document instanceof Uint8Array ? document : new TextEncoder().encode(JSON.stringify(document));
  writeFileSync(join(folder, "index.json"), bytes);
  writeFileSync(join(folder, "index.json.sig"), key.sign(bytes));
  return join(folder, "index.json");
}

/** Serves the files of `folder` on 127.0.0.1 (404 for anything missing). */
export function serveFolder(folder: string): { url: string; stop(): Promise<void> } {
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) => {
      const name = new URL(request.url).pathname.split("/").pop() ?? "";
      const file = Bun.file(join(folder, name));
      return file.exists().then((exists) => (exists && /^[\w.-]+$/.test(name) ? new Response(file) : new Response("not found", { status: 404 })));
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

/** A registry settings object for tests, with its own data dir. */
export function registrySettings(registryUrl: string, publicKeys: string[], maxAgeMs = 30 * 86_400_000) {
  return { dataDir: tempDir("gigmcp-registry-"), registryUrl, registryPublicKeys: publicKeys, registryMaxAgeMs: maxAgeMs };
}
