/**
 * Times every store operation into gigmcp_db_query_duration_seconds, around
 * whichever implementation openStore chose: one wrapper at the Store
 * interface, so no repository method (present or future) is timed by hand.
 */
import { metrics, timed } from "../metrics/index.ts";
import type { Store } from "./types.ts";

export function timedStore(store: Store): Store {
  const repositories = new Map<PropertyKey, object>();
  const timedMethod = (operation: string, method: (...args: unknown[]) => unknown, self: object) =>
    (...args: unknown[]) => timed(metrics.dbQueryDuration, { operation }, async () => method.apply(self, args));
  return new Proxy(store, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key);
      if (key === "close" || typeof key === "symbol") return typeof value === "function" ? value.bind(target) : value;
      if (typeof value === "function") return timedMethod(key, value as (...args: unknown[]) => unknown, target);
      if (typeof value !== "object" || value === null) return value;
      let repository = repositories.get(key);
      if (!repository) {
        repository = new Proxy(value, {
          get(inner, method) {
            const member: unknown = Reflect.get(inner, method);
            return typeof member === "function" && typeof method === "string" ? timedMethod(`${key}.${method}`, member as (...args: unknown[]) => unknown, inner) : member;
          },
        });
        repositories.set(key, repository);
      }
      return repository;
    },
  });
}
