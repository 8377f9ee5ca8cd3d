/**
 * HTTP plumbing for registry traffic: which URLs may be contacted, timeouts on
 * the answer and on every pause of a body, bounded reads, and retries with
 * exponential backoff for failures that another try can fix.
 */
import type { Logger } from "../log/index.ts";
import { OciError, TransientError } from "./errors.ts";
import { isLoopbackHost } from "./reference.ts";

export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  /** Wait before the second try; doubled for each later one. */
  baseDelayMs: number;
  /** No single wait (nor a server's Retry-After) exceeds this. */
  maxDelayMs: number;
}

export interface Transport {
  /** Speak plain http to any host (tests, lab registries); otherwise only to loopback. */
  plainHttp: boolean;
  /** Longest wait for an answer, and for each piece of a body. */
  timeoutMs: number;
}

/** An answered request whose body has not been read yet. */
export interface Exchange {
  response: Response;
  /** The body, piece by piece; a stall longer than the timeout fails it. */
  chunks(): AsyncGenerator<Uint8Array>;
  /** Drops the body (for answers that are not read). */
  discard(): void;
}

/** Refuses cleartext to anything but loopback unless the caller asked for it. */
export function checkTransport(url: URL, transport: Transport): void {
  if (url.protocol === "https:") return;
  if (url.protocol === "http:" && (transport.plainHttp || isLoopbackHost(url.hostname))) return;
  throw new OciError(`refusing ${url.protocol}//${url.host}: registries and their token and blob servers must use https (plain http is allowed for loopback only)`);
}

const errorMessage = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** One GET without following redirects; network failures and timeouts are TransientError. */
export async function send(url: URL, headers: Record<string, string>, transport: Transport): Promise<Exchange> {
  checkTransport(url, transport);
  const abort = new AbortController();
  let timedOut = false;
  const arm = () =>
    setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, transport.timeoutMs);
  let timer = arm();
  let response: Response;
  try {
    // identity: a transparently decompressed body would no longer hash to its digest.
    response = await fetch(url, { headers: { ...headers, "accept-encoding": "identity" }, redirect: "manual", signal: abort.signal });
  } catch (error) {
    throw new TransientError(timedOut ? `${url.host} did not answer within ${transport.timeoutMs} ms` : `cannot reach ${url.host}: ${errorMessage(error)}`);
  } finally {
    clearTimeout(timer);
  }
  return {
    response,
    async *chunks() {
      const reader = response.body?.getReader();
      if (!reader) return;
      try {
        while (true) {
          timer = arm();
          let piece: Awaited<ReturnType<typeof reader.read>>;
          try {
            piece = await reader.read();
          } catch (error) {
            throw new TransientError(timedOut ? `${url.host} stalled for ${transport.timeoutMs} ms` : `connection to ${url.host} failed: ${errorMessage(error)}`);
          } finally {
            clearTimeout(timer);
          }
          if (piece.done) return;
          yield piece.value;
        }
      } finally {
        abort.abort();
      }
    },
    discard() {
      abort.abort();
    },
  };
}

/** Reads a whole body of at most `maxBytes`; `exactSize`, when known, must match. */
export async function readBody(exchange: Exchange, what: string, maxBytes: number, exactSize?: number): Promise<Uint8Array> {
  const limit = exactSize ?? maxBytes;
  const declared = Number(exchange.response.headers.get("content-length") ?? Number.NaN);
  if (declared > limit) {
    exchange.discard();
    throw new OciError(`${what} is ${declared} bytes, more than the ${limit} allowed`);
  }
  const pieces: Uint8Array[] = [];
  let total = 0;
  for await (const piece of exchange.chunks()) {
    total += piece.length;
    if (total > limit) throw new OciError(`${what} is larger than the ${limit} bytes allowed`);
    pieces.push(piece);
  }
  if (exactSize !== undefined && total !== exactSize) throw new TransientError(`${what} ended after ${total} of ${exactSize} bytes`);
  return Buffer.concat(pieces);
}

/** Throws TransientError for answers worth retrying (429, 5xx). */
export function throwIfTransient(exchange: Exchange, what: string): void {
  const { status, statusText } = exchange.response;
  if (status !== 429 && status < 500) return;
  exchange.discard();
  const retryAfter = Number(exchange.response.headers.get("retry-after"));
  throw new TransientError(`${what}: the server answered ${status} ${statusText}`.trim(), Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : undefined);
}

/** Runs `attempt` until it succeeds, fails for good, or the tries are spent. */
export async function withRetries<T>(what: string, policy: RetryPolicy, log: Logger | undefined, attempt: () => Promise<T>): Promise<T> {
  for (let tried = 1; ; tried++) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof TransientError)) throw error;
      if (tried >= policy.attempts) throw new OciError(`${what} failed after ${tried} tries: ${error.message}; check the registry and try again later`);
      const backoff = policy.baseDelayMs * 2 ** (tried - 1) * (0.75 + Math.random() / 2);
      const delay = Math.min(policy.maxDelayMs, error.retryAfterMs ?? backoff);
      log?.warn("registry request failed; retrying", { what, error: error.message, attempt: tried, delayMs: Math.round(delay) });
      await Bun.sleep(delay);
    }
  }
}
