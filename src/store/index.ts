/**
 * Persistent state behind repository interfaces. Callers see these types and
 * the Store interface only; the SQLite implementation (and later Postgres)
 * lives behind openStore.
 */
export * from "./types.ts";
export { openStore, hashToken } from "./sqlite.ts";
export { credentialSpecProblem, parseCredentialSpec } from "./credential-specs.ts";
