/**
 * Installed servers run an entrypoint extracted from a pulled image into the
 * gateway's private store. Before every start it is opened once, hashed
 * through that descriptor and, in a sandbox, copied in from the same
 * descriptor: what runs is exactly what was hashed.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import type { Server } from "../store/index.ts";

const CHUNK = 1024 * 1024;

/** The pulled entrypoint an installed server runs, if it runs one (not for toolspec-engine servers). */
export function pulledEntrypoint(server: Server): { entrypoint: string; entrypointSha256: string } | undefined {
  const installed = server.installed;
  return installed?.entrypoint && installed.entrypointSha256 ? { entrypoint: installed.entrypoint, entrypointSha256: installed.entrypointSha256 } : undefined;
}

/** Opens the installed entrypoint read-only and checks its hash; the caller owns the returned fd. */
export function openVerifiedEntrypoint(server: Server, path: string): number {
  const expected = pulledEntrypoint(server)!.entrypointSha256;
  const reinstall = `reinstall it with gigmcp registry install ${server.installed!.reference}`;
  let fd: number;
  try {
    // Never through a symlink: the store holds the file itself.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const problem = code === "ENOENT" ? "is missing" : code === "ELOOP" ? "was replaced by a symlink" : `cannot be opened (${code})`;
    throw new Error(`the entrypoint of ${server.name} ${problem}: ${reinstall}`);
  }
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`the entrypoint of ${server.name} is no longer a regular file: ${reinstall}`);
    const hasher = new Bun.CryptoHasher("sha256");
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (let position = 0; ; ) {
      const read = readSync(fd, buffer, 0, CHUNK, position);
      if (read === 0) break;
      hasher.update(buffer.subarray(0, read));
      position += read;
    }
    const actual = hasher.digest("hex");
    if (actual !== expected) {
      throw new Error(
        `the entrypoint of ${server.name} changed since it was installed (sha256 ${actual}, expected ${expected}): ${reinstall}`,
      );
    }
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}
