/** A pull or check refused; the message says what was wrong and what to do. */
export class OciError extends Error {
  override name = "OciError";
}

/** A failure worth another try: network error, timeout, 5xx or 429. */
export class TransientError extends OciError {
  override name = "TransientError";

  constructor(
    message: string,
    /** The server's Retry-After, when it gave one. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}
