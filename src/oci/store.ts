/**
 * The content store: everything filed under the sha256 of its bytes, written
 * to a temporary file and renamed into place so that a reader never sees half
 * a file. Blobs are re-hashed whenever they are used.
 *
 *   <root>/blobs/sha256/<hex>        manifests, configs and layers
 *   <root>/entrypoints/<sha256>      extracted entrypoints, mode 0555
 *   <root>/tmp/                      partial downloads and files being written
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { OciError } from "./errors.ts";

export interface StoredEntrypoint {
  path: string;
  /** Hex sha256 of the file. */
  sha256: string;
  size: number;
}

/** `sha256:<hex>` of a file's content, read as a stream. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const piece of createReadStream(path)) hash.update(piece as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

// One download per blob at a time in this process; a second pull of the same blob waits for it.
const inFlight = new Map<string, Promise<string>>();

export class BlobStore {
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
  }

  blobPath(digest: string): string {
    return join(this.#root, "blobs", "sha256", digest.slice("sha256:".length));
  }

  /** The stored bytes of a small blob, if present and intact; a damaged copy is deleted. */
  async readVerified(digest: string, maxBytes: number): Promise<Uint8Array | undefined> {
    const path = this.blobPath(digest);
    const size = await stat(path).then((info) => info.size, () => undefined);
    if (size === undefined || size > maxBytes) return undefined;
    const bytes = await readFile(path);
    if (`sha256:${createHash("sha256").update(bytes).digest("hex")}` === digest) return bytes;
    await rm(path, { force: true });
    return undefined;
  }

  /** Files verified bytes under their digest. */
  async save(digest: string, bytes: Uint8Array): Promise<void> {
    const temp = await this.#tempPath();
    await writeFile(temp, bytes, { mode: 0o644 });
    await rename(temp, this.blobPath(digest));
  }

  /**
   * The path of a stored blob, downloading it first if it is missing or no
   * longer matches its digest. `download` fills the partial file it is given
   * and verifies it.
   */
  async blob(blob: { digest: string; size: number }, download: (partialPath: string) => Promise<void>): Promise<string> {
    const key = `${this.#root}\0${blob.digest}`;
    let pending = inFlight.get(key);
    if (!pending) {
      pending = this.#fetchBlob(blob, download).finally(() => inFlight.delete(key));
      inFlight.set(key, pending);
    }
    return pending;
  }

  async #fetchBlob(blob: { digest: string; size: number }, download: (partialPath: string) => Promise<void>): Promise<string> {
    const path = this.blobPath(blob.digest);
    const size = await stat(path).then((info) => info.size, () => undefined);
    if (size === blob.size && (await hashFile(path)) === blob.digest) return path;
    await rm(path, { force: true });
    await this.#directories();
    // A fixed name, so that a download cut short by a crash is resumed by the next pull.
    const partial = join(this.#root, "tmp", `${blob.digest.slice("sha256:".length)}.partial`);
    await download(partial);
    await rename(partial, path);
    return path;
  }

  /**
   * Writes an entrypoint produced by `produce` (which pushes its bytes to the
   * sink in order) and files it under its sha256, read-only and executable.
   */
  async writeEntrypoint(produce: (sink: (piece: Uint8Array) => void) => Promise<void>): Promise<StoredEntrypoint> {
    const temp = await this.#tempPath();
    const hash = createHash("sha256");
    let size = 0;
    const fd = openSync(temp, "wx", 0o600);
    try {
      // Synchronous writes: the tar parser hands over the bytes synchronously too.
      await produce((piece) => {
        writeSync(fd, piece);
        hash.update(piece);
        size += piece.length;
      });
      fsyncSync(fd);
    } catch (error) {
      closeSync(fd);
      await rm(temp, { force: true });
      throw error;
    }
    closeSync(fd);
    const sha256 = hash.digest("hex");
    const path = join(this.#root, "entrypoints", sha256);
    await chmod(temp, 0o555);
    await rename(temp, path);
    return { path, sha256, size };
  }

  async #directories(): Promise<void> {
    for (const dir of ["blobs/sha256", "entrypoints", "tmp"]) await mkdir(join(this.#root, dir), { recursive: true });
  }

  async #tempPath(): Promise<string> {
    await this.#directories();
    return join(this.#root, "tmp", `${randomBytes(8).toString("hex")}.tmp`);
  }
}

