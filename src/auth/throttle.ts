/** In-memory throttling of failed logins, per account and per source address. */

export interface ThrottleLimits {
  /** Failures allowed per account within the window. */
  perAccount: number;
  /** Failures allowed per source address within the window (covers spraying many accounts). */
  perAddress: number;
  windowMs: number;
}

export const DEFAULT_THROTTLE_LIMITS: ThrottleLimits = { perAccount: 5, perAddress: 20, windowMs: 15 * 60_000 };

/** Bounds memory when failures come from very many accounts or addresses; the oldest keys go first. */
const MAX_TRACKED_KEYS = 10_000;

/**
 * Sliding-window counter of login failures. Throttled attempts are not
 * counted, so a locked account opens again one window after its failures.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly limits: ThrottleLimits = DEFAULT_THROTTLE_LIMITS) {}

  /** Seconds until another attempt for this account from this address is allowed; 0 when it is now. */
  retryAfterSeconds(account: string, address: string, now: number): number {
    const waitMs = Math.max(
      this.waitMs(accountKey(account), this.limits.perAccount, now),
      this.waitMs(addressKey(address), this.limits.perAddress, now),
    );
    return Math.ceil(waitMs / 1000);
  }

  recordFailure(account: string, address: string, now: number): void {
    for (const key of [accountKey(account), addressKey(address)]) {
      const times = this.recent(key, now);
      times.push(now);
      this.failures.delete(key); // re-insert so the map stays ordered by last failure
      this.failures.set(key, times);
    }
    while (this.failures.size > MAX_TRACKED_KEYS) this.failures.delete(this.failures.keys().next().value!);
  }

  /** A successful login clears the account's failures (not the address's: one good password must not reset a spray). */
  recordSuccess(account: string): void {
    this.failures.delete(accountKey(account));
  }

  private waitMs(key: string, limit: number, now: number): number {
    const times = this.recent(key, now);
    if (times.length < limit) return 0;
    // The window allows another attempt once the failure that filled it ages out.
    return times[times.length - limit]! + this.limits.windowMs - now;
  }

  private recent(key: string, now: number): number[] {
    const times = (this.failures.get(key) ?? []).filter((time) => time > now - this.limits.windowMs);
    if (times.length === 0) this.failures.delete(key);
    return times;
  }
}

const accountKey = (email: string) => `account:${email.trim().toLowerCase()}`;
const addressKey = (address: string) => `address:${address}`;
