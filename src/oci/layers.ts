/**
 * Finds the entrypoint in an image's layers without unpacking them. A first
 * pass reads every layer's tar headers into a merged tree (whiteouts applied,
 * later layers winning); the entrypoint is resolved in that tree, symlinks
 * followed inside the image and never on the host; a second pass copies the
 * one tar entry that holds its bytes. Hostile archives are refused while they
 * stream, and a layer that expands too far is stopped by counting its bytes.
 */
import { createReadStream } from "node:fs";
import { PassThrough, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createZstdDecompress } from "node:zlib";
import { Parser, type ReadEntry } from "tar";
import { OciError } from "./errors.ts";
import type { LayerCompression } from "./manifest.ts";

export interface LayerFile {
  /** The verified blob in the content store. */
  path: string;
  digest: string;
  compression: LayerCompression;
}

export interface ExtractionLimits {
  /** Largest entrypoint accepted. */
  maxEntrypointBytes: number;
  /** Most bytes one layer may expand to. */
  maxLayerExpandedBytes: number;
  /** Most uncompressed bytes per compressed byte, once a layer is past 64 MiB. */
  maxExpansionRatio: number;
}

/** Where the entrypoint's bytes are: the n-th tar entry of a layer. */
export interface EntrypointSource {
  layer: number;
  ordinal: number;
  /** The entry's name in the archive, for messages and a consistency check. */
  entry: string;
  size: number;
}

/** Below this, any compression ratio is fine; small layers cannot be bombs. */
const EXPANSION_RATIO_FLOOR = 64 * 1024 * 1024;
/** Entries across all layers; bounds the memory of the merged tree. */
const MAX_ENTRIES = 1_000_000;
/** As Linux: more symlinks than this on one path is a loop. */
const MAX_SYMLINK_HOPS = 40;
const WHITEOUT_PREFIX = ".wh.";
const OPAQUE_WHITEOUT = ".wh..wh..opq";

interface DirectoryNode {
  kind: "directory";
  children: Map<string, TreeNode>;
}
type TreeNode =
  | DirectoryNode
  | { kind: "file"; mode: number; source: EntrypointSource }
  | { kind: "symlink"; target: string; entry: string }
  /** Device, fifo, unsupported entry type, dangling hardlink: never an entrypoint. */
  | { kind: "other"; what: string; entry: string };

type Change =
  | { op: "whiteout" | "opaque"; parts: string[] }
  | { op: "add"; parts: string[]; node: TreeNode }
  | { op: "hardlink"; parts: string[]; entry: string; target: string[]; linkpath: string };

const directory = (): DirectoryNode => ({ kind: "directory", children: new Map() });

/** Splits an entrypoint path such as /app/server; throws if it is not absolute and plain. */
export function entrypointParts(path: string): string[] {
  const parts = path.split("/").filter((part) => part !== "" && part !== ".");
  if (!path.startsWith("/") || parts.length === 0 || parts.includes("..")) {
    throw new OciError(`entrypoint "${path}" must be an absolute path to a file inside the image, without ".." (e.g. /app/server)`);
  }
  return parts;
}

/** Pass one: the merged tree of every layer, and the entry that ends up at the entrypoint. */
export async function locateEntrypoint(layers: LayerFile[], entrypoint: string, limits: ExtractionLimits): Promise<EntrypointSource> {
  const root = directory();
  let entries = 0;
  for (const [index, layer] of layers.entries()) {
    const name = layerName(index, layers.length, layer.digest);
    const refuse = (entry: string, problem: string) => new OciError(`image refused: ${name}: entry "${entry}" ${problem}`);
    const changes: Change[] = [];
    const count = (entry: ReadEntry) => {
      if (++entries > MAX_ENTRIES) throw new OciError(`image refused: more than ${MAX_ENTRIES} entries in its layers`);
      return archiveParts(entry.path, (problem) => refuse(entry.path, problem));
    };
    await readLayer(layer, name, limits, {
      entry: (entry, ordinal) => {
        const parts = count(entry);
        if (parts.length === 0) return; // the root directory itself
        changes.push(describeEntry(entry, parts, { layer: index, ordinal, entry: entry.path, size: entry.size }, refuse));
      },
      ignored: (entry) => {
        if (entry.meta) throw refuse(entry.path, `is a metadata header of ${entry.size} bytes, more than tar accepts`);
        const parts = count(entry);
        if (parts.length > 0) changes.push({ op: "add", parts, node: { kind: "other", what: `tar entry of unsupported type ${entry.type}`, entry: entry.path } });
      },
    });
    applyChanges(root, changes, name);
  }
  return resolveEntrypoint(root, entrypoint, limits);
}

/** Pass two: streams the entrypoint's bytes, in order, to `sink`. */
export async function streamEntrypoint(layers: LayerFile[], source: EntrypointSource, limits: ExtractionLimits, sink: (piece: Uint8Array) => void): Promise<void> {
  const layer = layers[source.layer]!;
  const name = layerName(source.layer, layers.length, layer.digest);
  let copied = 0;
  let found = false;
  let failure: unknown;
  await readLayer(layer, name, limits, {
    entry: (entry, ordinal, stop) => {
      if (ordinal !== source.ordinal) return;
      if (entry.path !== source.entry) throw new OciError(`${name} changed between two reads; pull again`);
      found = true;
      entry.on("data", (piece: Buffer) => {
        if (failure !== undefined) return;
        try {
          copied += piece.length;
          if (copied > limits.maxEntrypointBytes) throw new OciError(`entrypoint is larger than the ${limits.maxEntrypointBytes} bytes allowed; refusing`);
          sink(piece);
        } catch (error) {
          // Kept apart from archive errors: a full disk is not a broken layer.
          failure = error;
          stop();
        }
      });
      entry.on("end", stop);
    },
  });
  if (failure !== undefined) throw failure;
  if (!found || copied !== source.size) throw new OciError(`${name} ended inside the entrypoint ("${source.entry}", ${copied} of ${source.size} bytes); refusing`);
}

function layerName(index: number, count: number, digest: string): string {
  return `layer ${index + 1} of ${count} (${digest})`;
}

/** An archive path as components; absolute paths and ".." are hostile wherever they appear. */
function archiveParts(path: string, refuse: (problem: string) => Error): string[] {
  if (path.startsWith("/")) throw refuse("is an absolute path, which would land outside the image root");
  const parts = path.split("/").filter((part) => part !== "" && part !== ".");
  if (parts.includes("..")) throw refuse(`has a ".." component, which would climb out of the image root`);
  return parts;
}

/** Whether a relative symlink target climbs above the root from where the link sits. */
function climbsOutOfRoot(linkParts: string[], target: string): boolean {
  if (target.startsWith("/")) return false; // absolute targets are rooted at the image root
  let depth = linkParts.length - 1;
  for (const part of target.split("/")) {
    if (part === "..") depth--;
    else if (part !== "" && part !== ".") depth++;
    if (depth < 0) return true;
  }
  return false;
}

function describeEntry(entry: ReadEntry, parts: string[], source: EntrypointSource, refuse: (entry: string, problem: string) => Error): Change {
  const base = parts.at(-1)!;
  const dirParts = parts.slice(0, -1);
  if (base === OPAQUE_WHITEOUT) return { op: "opaque", parts: dirParts };
  if (base.startsWith(WHITEOUT_PREFIX)) {
    // ".." is already refused; "." would delete the directory holding the marker.
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (hidden === "" || hidden === ".") throw refuse(entry.path, "is a whiteout without a name");
    return { op: "whiteout", parts: [...dirParts, hidden] };
  }
  const mode = entry.mode ?? 0;
  switch (entry.type) {
    case "File":
    case "OldFile":
    case "ContiguousFile":
      return { op: "add", parts, node: { kind: "file", mode, source } };
    case "Directory":
    case "GNUDumpDir":
      return { op: "add", parts, node: directory() };
    case "SymbolicLink": {
      const target = entry.linkpath ?? "";
      if (climbsOutOfRoot(parts, target)) throw refuse(entry.path, `is a symlink to "${target}", outside the image root`);
      return { op: "add", parts, node: { kind: "symlink", target, entry: entry.path } };
    }
    case "Link": {
      const linkpath = entry.linkpath ?? "";
      const target = archiveParts(linkpath, () => refuse(entry.path, `is a hardlink to "${linkpath}", outside the image root`));
      return { op: "hardlink", parts, entry: entry.path, target, linkpath };
    }
    case "CharacterDevice":
      return { op: "add", parts, node: { kind: "other", what: "character device", entry: entry.path } };
    case "BlockDevice":
      return { op: "add", parts, node: { kind: "other", what: "block device", entry: entry.path } };
    case "FIFO":
      return { op: "add", parts, node: { kind: "other", what: "fifo", entry: entry.path } };
    default:
      return { op: "add", parts, node: { kind: "other", what: `tar entry of unsupported type ${entry.type}`, entry: entry.path } };
  }
}

/** Lays one layer over the tree: its whiteouts hide lower layers' entries, then its entries land on top. */
function applyChanges(root: DirectoryNode, changes: Change[], layer: string): void {
  const context = `image refused: ${layer}`;
  for (const change of changes) {
    if (change.op === "whiteout") {
      const spot = walk(root, change.parts, { create: false, followLast: false, context });
      if (spot.node) spot.parent.children.delete(spot.name);
    } else if (change.op === "opaque") {
      const spot = walk(root, change.parts, { create: false, followLast: true, context });
      if (spot.node?.kind === "directory") spot.node.children.clear();
    }
  }
  for (const change of changes) {
    if (change.op !== "add" && change.op !== "hardlink") continue;
    const spot = walk(root, change.parts, { create: true, followLast: false, context });
    const node = change.op === "add" ? change.node : hardlinkNode(root, change, context);
    // A directory over a directory merges; anything else replaces what was there.
    if (node.kind === "directory" && spot.node?.kind === "directory") continue;
    spot.parent.children.set(spot.name, node);
  }
}

/** A hardlink shares its target's node: the target must already be in the image. */
function hardlinkNode(root: DirectoryNode, change: Extract<Change, { op: "hardlink" }>, context: string): TreeNode {
  const target = walk(root, change.target, { create: false, followLast: false, context }).node;
  if (!target) return { kind: "other", what: `hardlink to "${change.linkpath}", which is not in the image`, entry: change.entry };
  if (target.kind === "directory") return { kind: "other", what: `hardlink to the directory "${change.linkpath}"`, entry: change.entry };
  return target;
}

interface Spot {
  parent: DirectoryNode;
  name: string;
  /** Undefined when the path (or a directory on it) is not in the tree. */
  node: TreeNode | undefined;
  /** The last symlink followed on the way, for messages. */
  via: string;
}

interface WalkOptions {
  /** Make missing (or non-directory) intermediate components directories, as tar extraction would. */
  create: boolean;
  /** Follow a symlink in the last component too. */
  followLast: boolean;
  /** Prefix of error messages. */
  context: string;
}

/**
 * Walks `parts` from the image root, following symlinks inside the tree: an
 * absolute target starts again at the image root, and ".." above the root is
 * refused.
 */
function walk(root: DirectoryNode, parts: readonly string[], options: WalkOptions): Spot {
  const dirs: DirectoryNode[] = [root];
  const names: string[] = [];
  const pending = [...parts];
  let hops = 0;
  let via = "";
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === "..") {
      if (dirs.length === 1) throw new OciError(`${options.context}: ${via} leads outside the image root`);
      dirs.pop();
      names.pop();
      continue;
    }
    const dir = dirs.at(-1)!;
    const node = dir.children.get(name);
    if (node?.kind === "symlink" && (pending.length > 0 || options.followLast)) {
      if (++hops > MAX_SYMLINK_HOPS) throw new OciError(`${options.context}: more than ${MAX_SYMLINK_HOPS} symlinks on the way (a loop?)`);
      via = `symlink "${node.entry}" -> "${node.target}"`;
      if (node.target.startsWith("/")) {
        dirs.length = 1;
        names.length = 0;
      }
      pending.unshift(...node.target.split("/").filter((part) => part !== "" && part !== "."));
      continue;
    }
    if (pending.length === 0) return { parent: dir, name, node, via };
    if (node?.kind === "directory") {
      dirs.push(node);
      names.push(name);
      continue;
    }
    if (!options.create) return { parent: dir, name, node: undefined, via };
    const made = directory();
    dir.children.set(name, made);
    dirs.push(made);
    names.push(name);
  }
  // The path ended on a directory reached through ".." (or was empty): that directory itself.
  return { parent: dirs.at(-2) ?? root, name: names.at(-1) ?? "", node: dirs.at(-1)!, via };
}

function resolveEntrypoint(root: DirectoryNode, entrypoint: string, limits: ExtractionLimits): EntrypointSource {
  const context = `entrypoint ${entrypoint}`;
  const { node, via } = walk(root, entrypointParts(entrypoint), { create: false, followLast: true, context });
  if (!node && via) throw new OciError(`${context} leads through ${via} to a path that is not in the image; refusing`);
  if (!node) throw new OciError(`${context} is not in the image (or a later layer deleted it); check the path`);
  if (node.kind === "directory") throw new OciError(`${context} is a directory; name the executable file`);
  if (node.kind === "other") throw new OciError(`${context} is a ${node.what} ("${node.entry}"), not a regular file; refusing`);
  if (node.kind === "symlink") throw new OciError(`${context} is a dangling symlink to "${node.target}"`);
  if (node.mode & 0o6000) {
    throw new OciError(`${context} has the ${node.mode & 0o4000 ? "setuid" : "setgid"} bit (mode ${node.mode.toString(8)}); refusing an entrypoint that asks for privileges`);
  }
  if (node.source.size > limits.maxEntrypointBytes) {
    throw new OciError(`${context} is ${node.source.size} bytes, more than the ${limits.maxEntrypointBytes} allowed; raise the limit if this is expected`);
  }
  return node.source;
}

interface Visitor {
  /** Called for each entry in order; `stop` ends the read early (after the entry's data). */
  entry(entry: ReadEntry, ordinal: number, stop: () => void): void;
  /** Entries tar does not hand over: metadata too large, unsupported types. */
  ignored?(entry: ReadEntry): void;
}

const STOP = Symbol("stop");

/** Streams a layer through its decompressor and the tar parser, counting what it expands to. */
async function readLayer(layer: LayerFile, name: string, limits: ExtractionLimits, visitor: Visitor): Promise<void> {
  // Compression is decided by the media type, never sniffed from the bytes.
  const parser = new Parser({ strict: true, zstd: false, brotli: false });
  let failure: unknown;
  let stopped = false;
  let ordinal = 0;
  const guard = (run: () => void) => {
    try {
      run();
    } catch (error) {
      failure ??= error;
    }
  };
  parser.on("entry", (entry: ReadEntry) => {
    const index = ordinal++;
    if (failure === undefined && !stopped) guard(() => visitor.entry(entry, index, () => (stopped = true)));
    entry.resume();
  });
  parser.on("ignoredEntry", (entry: ReadEntry) => {
    if (failure === undefined && visitor.ignored) guard(() => visitor.ignored!(entry));
  });
  parser.on("error", (error: Error) => {
    failure ??= new OciError(`image refused: ${name} is not a valid tar archive: ${error.message}`);
  });

  let compressed = 0;
  let expanded = 0;
  const countCompressed = new Transform({
    transform(piece: Buffer, _encoding, done) {
      compressed += piece.length;
      done(null, piece);
    },
  });
  const decompress = layer.compression === "gzip" ? createGunzip() : layer.compression === "zstd" ? createZstdDecompress() : new PassThrough();
  const feed = async (input: AsyncIterable<Buffer>) => {
    for await (const piece of input) {
      expanded += piece.length;
      if (expanded > limits.maxLayerExpandedBytes) {
        throw new OciError(`image refused: ${name} expands beyond ${limits.maxLayerExpandedBytes} bytes (a decompression bomb?)`);
      }
      if (expanded > EXPANSION_RATIO_FLOOR && expanded > compressed * limits.maxExpansionRatio) {
        throw new OciError(`image refused: ${name} expands more than ${limits.maxExpansionRatio} times its compressed size (a decompression bomb?)`);
      }
      // The handlers run synchronously inside write(), so a failure is known right after it.
      parser.write(piece);
      if (failure !== undefined) throw failure;
      if (stopped) throw STOP;
    }
    parser.end();
    if (failure !== undefined) throw failure;
  };
  try {
    await pipeline(createReadStream(layer.path), countCompressed, decompress, feed);
  } catch (error) {
    if (error === STOP) return;
    if (error instanceof OciError) throw error;
    throw new OciError(`image refused: ${name} is not valid ${layer.compression === "none" ? "tar" : layer.compression} data: ${error instanceof Error ? error.message : String(error)}`);
  }
}
