/**
 * Manifests, indexes and image configs as the registry serves them (OCI and
 * Docker v2 media types), validated with valibot before any field is used.
 */
import * as v from "valibot";
import { OciError } from "./errors.ts";
import { SHA256_DIGEST } from "./reference.ts";

const MEDIA_TYPES = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
} as const;

const MANIFEST_TYPES: string[] = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest];
const INDEX_TYPES: string[] = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList];
const CONFIG_TYPES: string[] = [MEDIA_TYPES.ociConfig, MEDIA_TYPES.dockerConfig];

/** The Accept header of a manifest GET: every kind parsed here. */
export const MANIFEST_ACCEPT = [...MANIFEST_TYPES, ...INDEX_TYPES].join(", ");

/** Backends run on linux/amd64; an index must offer that platform. */
const TARGET_PLATFORM = { os: "linux", architecture: "amd64" } as const;

export type LayerCompression = "gzip" | "zstd" | "none";

const LAYER_COMPRESSION: Record<string, LayerCompression> = {
  "application/vnd.oci.image.layer.v1.tar": "none",
  "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
  "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
};

const digest = v.pipe(v.string(), v.regex(SHA256_DIGEST, "must be a sha256 digest (sha256:<64 hex>)"));
const size = v.pipe(v.number(), v.safeInteger(), v.minValue(0));

const descriptor = v.object({ mediaType: v.string(), digest, size });
type Descriptor = v.InferOutput<typeof descriptor>;

const platform = v.object({ os: v.string(), architecture: v.string(), variant: v.optional(v.string()) });

const imageManifest = v.object({
  schemaVersion: v.literal(2),
  mediaType: v.optional(v.picklist(MANIFEST_TYPES)),
  config: descriptor,
  layers: v.pipe(v.array(descriptor), v.minLength(1), v.maxLength(256)),
});

const imageIndex = v.object({
  schemaVersion: v.literal(2),
  mediaType: v.optional(v.picklist(INDEX_TYPES)),
  manifests: v.array(v.object({ ...descriptor.entries, platform: v.optional(platform) })),
});

const imageConfig = v.object({ os: v.string(), architecture: v.string() });

type ParsedManifest =
  | { kind: "image"; config: Descriptor; layers: Descriptor[] }
  | { kind: "index"; manifests: v.InferOutput<typeof imageIndex>["manifests"] };

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new OciError(`${what} is not valid UTF-8 JSON`);
  }
}

function validate<T extends v.GenericSchema>(schema: T, value: unknown, what: string): v.InferOutput<T> {
  const result = v.safeParse(schema, value);
  if (!result.success) throw new OciError(`${what} is malformed: ${v.summarize(result.issues).replaceAll("\n", "; ")}`);
  return result.output;
}

/** Parses verified manifest bytes into an image manifest or an index. */
export function parseManifest(bytes: Uint8Array, manifestDigest: string): ParsedManifest {
  const what = `manifest ${manifestDigest}`;
  const json = parseJson(bytes, what);
  if (typeof json !== "object" || json === null) throw new OciError(`${what} is not a JSON object`);
  const mediaType = "mediaType" in json ? json.mediaType : undefined;
  if (typeof mediaType === "string" && mediaType.startsWith("application/vnd.docker.distribution.manifest.v1")) {
    throw new OciError(`${what} uses Docker schema 1, which is not supported; push the image again with a current tool`);
  }
  // Without a mediaType, the shape decides; a document with both shapes is ambiguous.
  const looksLikeIndex = "manifests" in json;
  if (looksLikeIndex && "layers" in json) throw new OciError(`${what} has both "manifests" and "layers"; refusing an ambiguous document`);
  const isIndex = typeof mediaType === "string" ? INDEX_TYPES.includes(mediaType) : looksLikeIndex;
  if (isIndex) return { kind: "index", manifests: validate(imageIndex, json, what).manifests };
  const manifest = validate(imageManifest, json, what);
  if (!CONFIG_TYPES.includes(manifest.config.mediaType)) {
    throw new OciError(`${what} is not a container image (config media type ${manifest.config.mediaType})`);
  }
  return { kind: "image", config: manifest.config, layers: manifest.layers };
}

/** Picks the linux/amd64 image manifest of an index. */
export function selectPlatform(index: Extract<ParsedManifest, { kind: "index" }>, indexDigest: string): Descriptor {
  const match = index.manifests.find(
    (entry) => entry.platform?.os === TARGET_PLATFORM.os && entry.platform.architecture === TARGET_PLATFORM.architecture,
  );
  if (!match) {
    const offered = index.manifests.map((entry) => (entry.platform ? `${entry.platform.os}/${entry.platform.architecture}` : "unknown")).join(", ");
    throw new OciError(
      `image index ${indexDigest} has no ${TARGET_PLATFORM.os}/${TARGET_PLATFORM.architecture} image (it offers: ${offered || "nothing"}); publish a linux/amd64 build`,
    );
  }
  if (!MANIFEST_TYPES.includes(match.mediaType)) {
    throw new OciError(`image index ${indexDigest} points its linux/amd64 entry at ${match.mediaType}, not an image manifest; nested indexes are not supported`);
  }
  return match;
}

/** Refuses an image config for another platform than the one backends run on. */
export function checkConfig(bytes: Uint8Array, configDigest: string): void {
  const what = `image config ${configDigest}`;
  const config = validate(imageConfig, parseJson(bytes, what), what);
  if (config.os !== TARGET_PLATFORM.os || config.architecture !== TARGET_PLATFORM.architecture) {
    throw new OciError(`image is built for ${config.os}/${config.architecture}; backends run on linux/amd64, so pin the digest of a linux/amd64 image`);
  }
}

/** How a layer is compressed, from its media type; foreign and unknown layers are refused. */
export function layerCompression(layer: Descriptor): LayerCompression {
  const compression = LAYER_COMPRESSION[layer.mediaType];
  if (compression) return compression;
  if (layer.mediaType.includes("foreign") || layer.mediaType.includes("nondistributable")) {
    throw new OciError(`layer ${layer.digest} is a foreign layer (${layer.mediaType}) that would be fetched from outside the registry; refusing`);
  }
  throw new OciError(`layer ${layer.digest} has an unsupported media type ${layer.mediaType} (expected an OCI or Docker tar layer, plain, gzip or zstd)`);
}
