/**
 * Reads one repository of one registry over the distribution API: manifests
 * and small blobs into memory, layers into a file (resuming a partial one).
 * Whatever arrives is checked against its digest before anyone uses it.
 */
import { createHash } from "node:crypto";
import { open, rm, stat, truncate } from "node:fs/promises";
import type { Logger } from "../log/index.ts";
import { RegistryAuth, type RegistryCredentials } from "./auth.ts";
import { OciError, TransientError } from "./errors.ts";
import { readBody, send, throwIfTransient, withRetries, type Exchange, type RetryPolicy, type Transport } from "./http.ts";
import type { ImageReference } from "./reference.ts";
import { hashFile } from "./store.ts";

export interface ClientOptions extends Transport {
  credentials: RegistryCredentials | undefined;
  retry: RetryPolicy;
  log: Logger | undefined;
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export class RegistryClient {
  readonly #base: URL;
  readonly #reference: ImageReference;
  readonly #options: ClientOptions;
  readonly #auth: RegistryAuth;

  constructor(reference: ImageReference, options: ClientOptions) {
    this.#reference = reference;
    this.#options = options;
    this.#base = new URL(`${options.plainHttp ? "http" : "https"}://${reference.registry}/`);
    this.#auth = new RegistryAuth(reference.registry, reference.repository, options.credentials, options);
  }

  /** GETs a manifest or a small blob and returns its bytes once they hash to `digest`. */
  async fetchVerified(kind: "manifests" | "blobs", digest: string, limits: { maxBytes: number; exactSize?: number; accept?: string }): Promise<Uint8Array> {
    const what = `${kind === "manifests" ? "manifest" : "blob"} ${digest} of ${this.#describe()}`;
    const bytes = await withRetries(`download of ${what}`, this.#options.retry, this.#options.log, async () => {
      const exchange = await this.#open(`${kind}/${digest}`, limits.accept ? { accept: limits.accept } : {});
      this.#refuseUnless(exchange, 200, what);
      return readBody(exchange, what, limits.maxBytes, limits.exactSize);
    });
    // Checked before parsing: nothing the registry says is trusted until it matches the pin.
    const actual = sha256Digest(bytes);
    if (actual !== digest) {
      throw new OciError(`${what} does not match its digest (the registry sent ${actual}); refusing it: the registry or something on the way altered it, or the pinned digest is wrong`);
    }
    return bytes;
  }

  /**
   * Downloads a blob into `partialPath`, continuing from what is already there
   * with a Range request. Refuses a body longer than `size` at once; a shorter
   * one is resumed. The finished file must hash to `digest`.
   */
  async downloadBlob(blob: { digest: string; size: number }, partialPath: string): Promise<void> {
    const what = `blob ${blob.digest} of ${this.#describe()}`;
    await withRetries(`download of ${what}`, this.#options.retry, this.#options.log, async () => {
      let have = await stat(partialPath).then((info) => info.size, () => 0);
      if (have > blob.size) {
        await truncate(partialPath, 0);
        have = 0;
      }
      if (have === blob.size && have > 0) return;
      const exchange = await this.#open(`blobs/${blob.digest}`, have > 0 ? { range: `bytes=${have}-` } : {});
      const { status } = exchange.response;
      const resumed = status === 206 && contentRangeStart(exchange.response) === have;
      if (!resumed && status !== 200) {
        if (status !== 206 && status !== 416) this.#refuseUnless(exchange, 200, what);
        // The server refused or garbled the range: start over, at the cost of one try.
        exchange.discard();
        await truncate(partialPath, 0);
        throw new TransientError(`${what}: the registry did not honour the resume range; restarting`);
      }
      if (!resumed) have = 0;
      let tooLong = false;
      const file = await open(partialPath, resumed ? "a" : "w");
      try {
        for await (const piece of exchange.chunks()) {
          if (have + piece.length > blob.size) {
            tooLong = true;
            break;
          }
          await file.write(piece);
          have += piece.length;
        }
      } finally {
        await file.close();
      }
      if (tooLong) {
        await rm(partialPath, { force: true });
        throw new OciError(`${what} is longer than the ${blob.size} bytes its manifest declares; refusing it`);
      }
      if (have < blob.size) throw new TransientError(`${what} ended after ${have} of ${blob.size} bytes`);
    });
    const actual = await hashFile(partialPath);
    if (actual !== blob.digest) {
      await rm(partialPath, { force: true });
      throw new OciError(`${what} does not match its digest (the download hashes to ${actual}); refusing it: the registry storage or something on the way altered it`);
    }
  }

  #describe(): string {
    return `${this.#reference.registry}/${this.#reference.repository}`;
  }

  /** Throws a lasting OciError unless the answer has `status`. */
  #refuseUnless(exchange: Exchange, status: number, what: string): void {
    const actual = exchange.response.status;
    if (actual === status) return;
    exchange.discard();
    if (actual === 404) throw new OciError(`${what} is not in the registry; check the image name and the pinned digest`);
    if (actual === 403) throw new OciError(`registry refused access to ${what}; check the credentials and their permissions`);
    throw new OciError(`registry answered ${actual} for ${what}`);
  }

  /** One registry GET: authentication, redirects, transient statuses. */
  async #open(path: string, headers: Record<string, string>): Promise<Exchange> {
    let url = new URL(`v2/${this.#reference.repository}/${path}`, this.#base);
    let answeredChallenge = false;
    for (let redirects = 0; redirects <= MAX_REDIRECTS; ) {
      // Credentials go to the registry only, never to a storage host it redirects to.
      const onRegistry = url.origin === this.#base.origin;
      const authorization = onRegistry ? this.#auth.header() : undefined;
      const exchange = await send(url, authorization ? { ...headers, authorization } : headers, this.#options);
      const { status } = exchange.response;
      if (status === 401 && onRegistry && !answeredChallenge) {
        exchange.discard();
        answeredChallenge = true;
        await this.#auth.answer(exchange.response.headers.get("www-authenticate"));
        continue;
      }
      if (REDIRECTS.has(status)) {
        exchange.discard();
        const location = exchange.response.headers.get("location");
        if (!location) throw new OciError(`${url.host} answered ${status} without a Location`);
        url = new URL(location, url);
        redirects++;
        continue;
      }
      throwIfTransient(exchange, `GET ${url.pathname}`);
      if (status === 401) {
        exchange.discard();
        throw new OciError(
          this.#options.credentials
            ? `${url.host} refused the username and password for ${this.#describe()}; check the credentials`
            : `${url.host} refused anonymous access to ${this.#describe()}; pass credentials`,
        );
      }
      return exchange;
    }
    throw new OciError(`${this.#describe()}: more than ${MAX_REDIRECTS} redirects`);
  }
}

function contentRangeStart(response: Response): number | undefined {
  const match = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(response.headers.get("content-range") ?? "");
  return match ? Number(match[1]) : undefined;
}
