/**
 * Daemonless image pulls: fetch an image pinned by digest over the OCI
 * distribution API, check every byte against its digest before using it, and
 * keep only the entrypoint, a single executable filed under its own sha256.
 * No container runtime, no unpacked root filesystem on the host.
 */
import type { Logger } from "../log/index.ts";
import type { RegistryCredentials } from "./auth.ts";
import { RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import type { RetryPolicy } from "./http.ts";
import { entrypointParts, locateEntrypoint, streamEntrypoint, type ExtractionLimits, type LayerFile } from "./layers.ts";
import { checkConfig, layerCompression, MANIFEST_ACCEPT, parseManifest, selectPlatform } from "./manifest.ts";
import { parseDigest, parseImageReference } from "./reference.ts";
import { BlobStore } from "./store.ts";

export { isLoopbackHost } from "./reference.ts";
export { OciError } from "./errors.ts";
export type { RegistryCredentials } from "./auth.ts";
export type { RetryPolicy } from "./http.ts";

export interface PullLimits extends ExtractionLimits {
  /** Most bytes all layers of the image may take, compressed. */
  maxLayersBytes: number;
}

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

export const DEFAULT_PULL_LIMITS: PullLimits = {
  maxLayersBytes: 2 * GiB,
  maxEntrypointBytes: 256 * MiB,
  maxLayerExpandedBytes: 8 * GiB,
  maxExpansionRatio: 100,
};

const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 500, maxDelayMs: 10_000 };

/** Manifests, indexes and image configs are small JSON documents. */
const MAX_DOCUMENT_BYTES = 4 * MiB;

export interface PullOptions {
  /** "registry-host[:port]/repository", without tag or digest. */
  image: string;
  /** The pinned content: "sha256:<64 hex>" of an image manifest or index. */
  digest: string;
  /** Absolute path of the executable inside the image, e.g. "/app/server". */
  entrypoint: string;
  /** Content store directory (created if missing). */
  storeDir: string;
  /** Sent to the registry (Basic) or its token server, only when it asks. */
  credentials?: RegistryCredentials;
  /** Plain http to the registry, for lab registries and tests; https otherwise. */
  plainHttp?: boolean;
  limits?: Partial<PullLimits>;
  retry?: Partial<RetryPolicy>;
  /** Longest wait for an answer and for each piece of a body (default 30 s). */
  timeoutMs?: number;
  log?: Logger;
}

export interface PulledEntrypoint {
  /** <storeDir>/entrypoints/<sha256>, mode 0555. */
  path: string;
  /** Hex sha256 of the entrypoint; the sandbox runners check it before each start. */
  sha256: string;
  size: number;
  /** The image manifest used: the pinned digest, or the linux/amd64 entry of a pinned index. */
  manifestDigest: string;
}

/** Pulls the image pinned by `digest` and stores its entrypoint; throws OciError saying why not. */
export async function pullEntrypoint(options: PullOptions): Promise<PulledEntrypoint> {
  const reference = parseImageReference(options.image);
  const pinned = parseDigest(options.digest);
  entrypointParts(options.entrypoint);
  const limits: PullLimits = { ...DEFAULT_PULL_LIMITS, ...options.limits };
  const store = new BlobStore(options.storeDir);
  const client = new RegistryClient(reference, {
    credentials: options.credentials,
    plainHttp: options.plainHttp ?? false,
    timeoutMs: options.timeoutMs ?? 30_000,
    retry: { ...DEFAULT_RETRY, ...options.retry },
    log: options.log,
  });

  // Documents are content-addressed too: a second pull of the same digest needs no registry.
  const document = async (kind: "manifests" | "blobs", digest: string, exactSize?: number) => {
    if (exactSize !== undefined && exactSize > MAX_DOCUMENT_BYTES) {
      throw new OciError(`${digest} is declared as ${exactSize} bytes; manifests and image configs may not exceed ${MAX_DOCUMENT_BYTES}`);
    }
    const cached = await store.readVerified(digest, MAX_DOCUMENT_BYTES);
    if (cached) return cached;
    const bytes = await client.fetchVerified(kind, digest, { maxBytes: MAX_DOCUMENT_BYTES, exactSize, accept: kind === "manifests" ? MANIFEST_ACCEPT : undefined });
    await store.save(digest, bytes);
    return bytes;
  };

  let manifestDigest = pinned;
  let manifest = parseManifest(await document("manifests", pinned), pinned);
  if (manifest.kind === "index") {
    const chosen = selectPlatform(manifest, pinned);
    manifestDigest = chosen.digest;
    manifest = parseManifest(await document("manifests", chosen.digest, chosen.size), chosen.digest);
    if (manifest.kind === "index") throw new OciError(`image index ${pinned} points its linux/amd64 entry at another index; nested indexes are not supported`);
  }
  checkConfig(await document("blobs", manifest.config.digest, manifest.config.size), manifest.config.digest);

  const compressions = manifest.layers.map(layerCompression);
  const total = manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
  if (total > limits.maxLayersBytes) {
    throw new OciError(`image layers take ${total} bytes, more than the ${limits.maxLayersBytes} allowed; raise limits.maxLayersBytes if this image is expected`);
  }
  const layers: LayerFile[] = [];
  for (const [index, layer] of manifest.layers.entries()) {
    const path = await store.blob(layer, (partial) => client.downloadBlob(layer, partial));
    layers.push({ path, digest: layer.digest, compression: compressions[index]! });
  }

  const source = await locateEntrypoint(layers, options.entrypoint, limits);
  const stored = await store.writeEntrypoint((sink) => streamEntrypoint(layers, source, limits, sink));
  return { ...stored, manifestDigest };
}
