/**
 * The gateway's read cache of configuration. Every change made through the
 * store (by this process, the CLI or another instance) bumps the revision;
 * the catalog polls it and drops its cache when it moves, then tells the
 * gateway so live sessions and backends can follow.
 */
import type { Logger } from "../log/index.ts";
import type { Profile, ProfileMember, Store } from "../store/index.ts";
import type { ProfileContext } from "./aggregate.ts";

const POLL_INTERVAL_MS = 500;

export class Catalog {
  private revision = -1;
  private readonly contexts = new Map<string, Promise<ProfileContext>>();
  private readonly listeners: (() => Promise<void>)[] = [];
  private timer: Timer | undefined;
  /** Checks run one after another; a tick is skipped while one is under way. */
  private checks: Promise<void> = Promise.resolve();
  private checking = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.revision = await this.store.revision();
    this.timer = setInterval(() => {
      if (!this.checking) void this.poll();
    }, POLL_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Calls `listener` after every configuration change, once the cache is fresh. */
  onChange(listener: () => Promise<void>): void {
    this.listeners.push(listener);
  }

  /** The profile's current members (cached until the next change). */
  context(profile: Profile): Promise<ProfileContext> {
    let context = this.contexts.get(profile.id);
    if (!context) {
      context = this.store.profiles.members(profile.id).then((members: ProfileMember[]) => ({ profile, members }));
      this.contexts.set(profile.id, context);
      context.catch(() => this.contexts.delete(profile.id));
    }
    return context;
  }

  /** Checks for a change now instead of at the next tick; resolves once listeners have run. */
  poll(): Promise<void> {
    this.checks = this.checks.then(() => this.check());
    return this.checks;
  }

  private async check(): Promise<void> {
    this.checking = true;
    try {
      const revision = await this.store.revision();
      if (revision === this.revision) return;
      this.revision = revision;
      this.contexts.clear();
      for (const listener of this.listeners) await listener();
    } catch (error) {
      this.log.error("could not apply configuration changes", { error });
    } finally {
      this.checking = false;
    }
  }
}
