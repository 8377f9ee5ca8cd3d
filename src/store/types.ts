/** The store's domain types and repository interfaces. */
import type { SealedSecret } from "../vault/index.ts";

export type Role = "admin" | "member";
export type ServerKind = "builtin" | "stdio";
export type Tier = "sealed" | "entrusted";

export interface User {
  id: string;
  email: string;
  role: Role;
  createdAt: number;
}

/** What an API token may do: read, change configuration, or administer users. */
export const API_SCOPES = ["read", "write", "admin"] as const;
export type ApiScope = (typeof API_SCOPES)[number];

/** A browser session as stored: keyed by the SHA-256 of its id, which is never stored. */
export interface SessionRecord {
  idHash: string;
  userId: string;
  csrfHash: string;
  createdAt: number;
  lastSeenAt: number;
  idleExpiresAt: number;
  absoluteExpiresAt: number;
}

/** What may be listed about an API token: never the token or its hash. */
export interface ApiToken {
  id: string;
  userId: string;
  prefix: string;
  label: string;
  scopes: ApiScope[];
  createdAt: number;
  expiresAt: number;
  lastUsedAt: number | null;
}

export interface Profile {
  id: string;
  tenantId: string;
  name: string;
  /** Expose tools as `<server>_<tool>` (true) or under their own names. */
  prefixTools: boolean;
  createdAt: number;
}

export interface ProfileToken {
  id: string;
  profileId: string;
  prefix: string;
  label: string;
  createdAt: number;
  lastUsedAt: number | null;
}

/** Sandbox resource limits; unset fields use the GIG_SANDBOX_* defaults. */
export interface SandboxLimits {
  memoryBytes?: number;
  pids?: number;
  cpuWeight?: number;
}

export const CREDENTIAL_TYPES = ["api_key", "basic", "oauth2"] as const;
export type CredentialType = (typeof CREDENTIAL_TYPES)[number];

/**
 * A credential a server needs. Sealed servers never see it: `header` and
 * `format` (containing `{token}`) say where the egress proxy puts it, and the
 * optional `env` variable receives a placeholder. Entrusted servers get the
 * real secret in the `env` variable.
 */
export interface CredentialSpec {
  id: string;
  type: CredentialType;
  header?: string;
  format?: string;
  env?: string;
  /** oauth2 only: the OAuth provider whose per-tenant connection supplies the token when no value is set for this server. */
  vendor?: string;
  /** oauth2 only: the scopes the server needs; a connection to its vendor asks for the union over the servers. */
  scopes?: string[];
}

/** Provenance of a server installed from the signed registry; the sandbox re-checks the entrypoint hash before every start. */
export interface InstalledFrom {
  /** name@version in the registry. */
  reference: string;
  /** Image reference and pinned manifest digest it was pulled from. */
  image: string;
  digest: string;
  /**
   * For a pulled image: the entrypoint's path inside it (where the sandbox puts it, e.g. /app/server)
   * and the SHA-256 of the extracted file. Absent when the gateway's toolspec engine serves the server.
   */
  entrypoint?: string;
  entrypointSha256?: string;
  /** What the operator agreed to at install (tier, egress, credentials, tools, digest); a change needs consent again. */
  consentHash: string;
}

export interface ServerSpec {
  name: string;
  kind: ServerKind;
  /** For builtin servers the bundled server's name (echo, fetch); else the executable. */
  command: string;
  args: string[];
  env: Record<string, string>;
  egress: string[];
  roPaths: string[];
  tier: Tier;
  timeoutMs: number | null;
  limits: SandboxLimits | null;
  credentials: CredentialSpec[];
  /** Set for servers installed from the registry. */
  installed?: InstalledFrom | null;
}

export interface Server extends ServerSpec {
  id: string;
  createdAt: number;
  updatedAt: number;
}

export interface ProfileMember {
  server: Server;
  /** Unprefixed tool names this profile exposes, or null for all. */
  tools: string[] | null;
}

/** What a valid bearer token grants: one profile of one tenant. */
export interface TokenGrant {
  tokenId: string;
  tokenHash: string;
  profile: Profile;
}

/** Which credential of which server, for which tenant. */
export interface CredentialKey {
  serverName: string;
  credentialId: string;
  tenantId: string;
}

/** What may be listed about a credential: never its value. */
export interface CredentialMetadata extends CredentialKey {
  type: CredentialType;
  createdAt: number;
  updatedAt: number;
}

export interface CredentialRecord extends CredentialMetadata {
  sealed: SealedSecret;
}

export interface SealedBlob {
  name: string;
  sealed: SealedSecret;
  createdAt: number;
  updatedAt: number;
}

/** "inject": the egress proxy let a request through and put a credential in it. */
export type AuditDecision = "allow" | "deny" | "inject";

export interface AuditRecord {
  action: string;
  decision: AuditDecision;
  actor?: string | null;
  tenantId?: string | null;
  detail?: Record<string, unknown>;
}

export interface AuditEvent extends Required<AuditRecord> {
  id: number;
  time: number;
}

export interface UserRepository {
  create(input: { email: string; role: Role; passwordHash?: string | null }): Promise<User>;
  list(): Promise<User[]>;
  byEmail(email: string): Promise<User | undefined>;
  /** The oldest admin: the tenant CLI commands act for unless told otherwise. */
  firstAdmin(): Promise<User | undefined>;
  byId(id: string): Promise<User | undefined>;
  /** The user with their password hash (null for users who sign in only through OIDC), for login. */
  withPasswordHash(email: string): Promise<{ user: User; passwordHash: string | null } | undefined>;
  /** Replaces the password hash (null removes password login); NotFoundError for an unknown user. */
  setPasswordHash(userId: string, passwordHash: string | null): Promise<void>;
  /** Changes a user's role; NotFoundError for an unknown user. */
  setRole(userId: string, role: Role): Promise<void>;
}

/** Sessions are runtime state, not configuration: no change bumps the revision. */
export interface SessionRepository {
  create(session: SessionRecord): Promise<void>;
  /** The session and its user, expired or not: the caller judges expiry. */
  byIdHash(idHash: string): Promise<{ session: SessionRecord; user: User } | undefined>;
  touch(idHash: string, lastSeenAt: number, idleExpiresAt: number): Promise<void>;
  /** Return how many sessions were removed. */
  remove(idHash: string): Promise<number>;
  removeForUser(userId: string): Promise<number>;
  removeExpired(now: number): Promise<number>;
}

export interface ApiTokenRepository {
  /** Stores a token the caller minted; only its hash is given. */
  create(token: ApiToken & { tokenHash: string }): Promise<void>;
  /** The token and its user, expired or not: the caller judges expiry. */
  byHash(tokenHash: string): Promise<{ token: ApiToken; user: User } | undefined>;
  list(userId: string): Promise<ApiToken[]>;
  /** Revokes the user's token by id or displayed prefix; returns the revoked tokens. */
  revoke(userId: string, idOrPrefix: string): Promise<ApiToken[]>;
  markUsed(id: string, at: number): Promise<void>;
}

export interface ProfileRepository {
  create(tenantId: string, name: string, options: { prefixTools: boolean }): Promise<Profile>;
  list(tenantId?: string): Promise<Profile[]>;
  get(tenantId: string, name: string): Promise<Profile>;
  delete(tenantId: string, name: string): Promise<void>;
  addServer(profileId: string, serverName: string, tools: string[] | null): Promise<void>;
  removeServer(profileId: string, serverName: string): Promise<void>;
  members(profileId: string): Promise<ProfileMember[]>;
}

export interface TokenRepository {
  /** Mints a token; the plain text is returned here once and never stored. */
  create(profileId: string, label: string): Promise<{ token: string; record: ProfileToken }>;
  /** The grant of a presented token, or undefined for any invalid one. */
  resolve(token: string): Promise<TokenGrant | undefined>;
  list(profileId: string): Promise<ProfileToken[]>;
  exists(tokenId: string): Promise<boolean>;
  /** Revokes by id or by the displayed prefix; returns how many were revoked. */
  revoke(profileId: string, idOrPrefix: string): Promise<number>;
  revokeByLabel(profileId: string, label: string): Promise<number>;
  /** Records use for `token list`; not a configuration change. */
  markUsed(tokenId: string, at: number): Promise<void>;
}

export interface ServerRepository {
  create(spec: ServerSpec): Promise<Server>;
  /** Creates or replaces the server of that name, keeping its id and memberships. */
  upsert(spec: ServerSpec): Promise<Server>;
  list(): Promise<Server[]>;
  get(name: string): Promise<Server>;
  remove(name: string): Promise<void>;
}

export interface CredentialRepository {
  /** Creates or replaces the credential's sealed value; `replaced` tells which. */
  set(input: CredentialKey & { type: CredentialType; sealed: SealedSecret }): Promise<{ record: CredentialMetadata; replaced: boolean }>;
  /** The sealed value, for the gateway to open; undefined when not set. */
  get(serverName: string, credentialId: string, tenantId: string): Promise<CredentialRecord | undefined>;
  /** Every credential of a tenant (or of all tenants), without values. */
  list(tenantId?: string): Promise<CredentialMetadata[]>;
  remove(serverName: string, credentialId: string, tenantId: string): Promise<void>;
  /** Every record with its sealed value, for key rotation. */
  all(): Promise<CredentialRecord[]>;
  /**
   * Replaces the sealed value with a re-wrapped one, but only while it still
   * equals `expected` (a concurrent `set` wins); returns whether it did.
   */
  rewrap(key: CredentialKey, expected: SealedSecret, replacement: SealedSecret): Promise<boolean>;
}

export interface PlaceholderRepository {
  /** The credential's placeholder (`gigph-` and 32 hex digits), created on first use and stable afterwards. */
  getOrCreate(serverName: string, credentialId: string, tenantId: string): Promise<string>;
  /** Which credential a placeholder stands for, if any. */
  resolve(placeholder: string): Promise<CredentialKey | undefined>;
}

export interface SealedBlobRepository {
  get(name: string): Promise<SealedBlob | undefined>;
  /** Creates or replaces the blob. */
  put(name: string, sealed: SealedSecret): Promise<void>;
  /** Creates the blob unless one of that name exists (processes racing to create it agree on one); false when it existed. */
  add(name: string, sealed: SealedSecret): Promise<boolean>;
  /** Every blob, for key rotation. */
  all(): Promise<SealedBlob[]>;
  /** Like CredentialRepository.rewrap: replaces only while the value still equals `expected`. */
  rewrap(name: string, expected: SealedSecret, replacement: SealedSecret): Promise<boolean>;
}

export interface AuditFilter {
  tenantId?: string;
  afterId?: number;
  /** Only events before this id (paging back, newest first). */
  beforeId?: number;
  since?: number;
  action?: string;
  decision?: AuditDecision;
  /** The actor, which for egress events is the server. */
  actor?: string;
  limit?: number;
}

export interface AuditRepository {
  record(event: AuditRecord): Promise<AuditEvent>;
  /** Records events that happened at `time`, in order, in one statement, without reading them back: the high-volume path (AuditQueue). */
  append(events: (AuditRecord & { time: number })[]): Promise<void>;
  /** Newest first, or with `afterId` the ones after it oldest first (for following); at most 1000. */
  list(filter?: AuditFilter): Promise<AuditEvent[]>;
  /**
   * Tool calls (action "tool.call") and denials (any action) in `count` consecutive buckets of
   * `bucketMs` from `since`, oldest first; every bucket is present, empty ones as zeros.
   */
  summary(filter: AuditSummaryFilter): Promise<AuditBucket[]>;
  /**
   * Links every event recorded from now on into the keyed hash chain (the vault's audit key, see
   * auditChainKey). Until it is called, events are stored without a link.
   */
  useChainKey(key: Uint8Array): Promise<void>;
  /** Recomputes the chain from the first event with the key given to useChainKey; reports the first break. */
  verify(): Promise<AuditVerification>;
}

/** Where the audit chain first fails. */
export type AuditChainBreak =
  /** The event's fields or link changed after it was written. */
  | { kind: "edited"; id: number }
  /** Events after `afterId` and before `beforeId` are gone. */
  | { kind: "deleted"; afterId: number; beforeId: number }
  /** An event that is not part of the chain: no link, or one the next event does not build on. */
  | { kind: "inserted"; id: number }
  /** The chain ends elsewhere than the stored head says: the newest events were deleted, or the head edited. */
  | { kind: "head"; headId: number; lastId: number };

export interface AuditVerification {
  /** Chained events whose links were recomputed and matched. */
  verified: number;
  /** Events written before the chain started (before the audit key was in use), which precede it. */
  unchained: number;
  /** The last verified event and its link: record it elsewhere, the only way to notice a truncated tail later. */
  head: { id: number; chain: string } | null;
  intact: boolean;
  /** The first break, and what it means in a sentence; null when intact. */
  broken: AuditChainBreak | null;
  problem: string | null;
}

export interface AuditSummaryFilter {
  tenantId?: string;
  since: number;
  bucketMs: number;
  count: number;
}

export interface AuditBucket {
  /** When the bucket begins (ms since the epoch); it spans bucketMs. */
  start: number;
  calls: number;
  denies: number;
}

/** An OAuth app registered by an admin at a vendor; its client secret is sealed and never returned. */
export interface OAuthAppRecord {
  vendor: string;
  clientId: string;
  /** Unset: the vendor's built-in preset. */
  authorizeUrl: string | null;
  tokenUrl: string | null;
  /** The RFC 7009 revocation endpoint; unset: the preset's, if the vendor has one. */
  revokeUrl: string | null;
  /** Scopes asked for on top of the servers' own (e.g. offline_access); null: the preset's. */
  scopes: string[] | null;
  /** null: the preset's choice (PKCE unless the vendor is known to refuse it). */
  pkce: boolean | null;
  clientSecret: SealedSecret | null;
  createdAt: number;
  updatedAt: number;
}

export const CONNECTION_STATUSES = ["connected", "needs_reconnect"] as const;
export type ConnectionStatus = (typeof CONNECTION_STATUSES)[number];

/** What may be listed about a tenant's connection to a vendor: never its tokens. */
export interface OAuthConnection {
  vendor: string;
  tenantId: string;
  status: ConnectionStatus;
  /** The scopes granted (as the token endpoint answered, else as asked for). */
  scopes: string[];
  /** When the current access token expires (ms since the epoch), if the vendor said. */
  expiresAt: number | null;
  /** Why the connection needs reconnecting (never a token). */
  problem: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface OAuthConnectionRecord extends OAuthConnection {
  /** The access and refresh tokens, sealed to (vendor, tenant). */
  sealed: SealedSecret;
  /** Bumped whenever the tokens change. */
  version: number;
  /** Until when (ms since the epoch) an instance holds the lease to refresh it; null: nobody does. */
  refreshingUntil: number | null;
}

/** The tokens a refresh stores. */
export type RefreshedTokens = Pick<OAuthConnectionRecord, "scopes" | "expiresAt" | "sealed">;

/** A connect flow between its authorization URL and the vendor's redirect back: keyed by the SHA-256 of its state. */
export interface OAuthFlowRecord {
  stateHash: string;
  vendor: string;
  tenantId: string;
  /** The user whose browser session must bring the redirect back; null when started from the CLI. */
  sessionUserId: string | null;
  /** The PKCE verifier, nonce and redirect URI, sealed to the flow. */
  sealed: SealedSecret;
  createdAt: number;
}

export interface OAuthAppRepository {
  /** Creates or replaces the vendor's app; a null clientSecret keeps none. */
  set(app: Omit<OAuthAppRecord, "createdAt" | "updatedAt">): Promise<OAuthAppRecord>;
  get(vendor: string): Promise<OAuthAppRecord | undefined>;
  list(): Promise<OAuthAppRecord[]>;
  remove(vendor: string): Promise<void>;
  /** Like CredentialRepository.rewrap, for the client secret. */
  rewrap(vendor: string, expected: SealedSecret, replacement: SealedSecret): Promise<boolean>;
}

/** Connections are runtime state of each tenant (tokens rotate constantly): no revision bump. */
export interface OAuthConnectionRepository {
  /** Creates or replaces the tenant's connection to the vendor, as a new version without a refresh lease; returns that version. */
  set(record: Omit<OAuthConnectionRecord, "createdAt" | "updatedAt" | "version" | "refreshingUntil">): Promise<number>;
  get(vendor: string, tenantId: string): Promise<OAuthConnectionRecord | undefined>;
  /** Every connection of a tenant (or of all tenants), without tokens. */
  list(tenantId?: string): Promise<OAuthConnection[]>;
  /**
   * Takes the lease to refresh the connection until `until`, if it is still at
   * `version` and nobody holds an unexpired lease: one conditional update, so
   * of all instances sharing the database exactly one wins.
   */
  claimRefresh(vendor: string, tenantId: string, version: number, until: number): Promise<boolean>;
  /** Stores refreshed tokens as the next version and ends the lease; false if the connection changed meanwhile (reconnected, removed). */
  finishRefresh(vendor: string, tenantId: string, version: number, tokens: RefreshedTokens): Promise<boolean>;
  /** Ends the lease without new tokens (the refresh failed for a passing reason). */
  releaseRefresh(vendor: string, tenantId: string, version: number): Promise<void>;
  /** Marks it as needing reconnection, with why, and ends any lease; its tokens are no longer used. With `version`, only if it is still at that version. */
  markNeedsReconnect(vendor: string, tenantId: string, problem: string, version?: number): Promise<void>;
  /** Returns whether there was one. */
  remove(vendor: string, tenantId: string): Promise<boolean>;
  all(): Promise<OAuthConnectionRecord[]>;
  rewrap(vendor: string, tenantId: string, expected: SealedSecret, replacement: SealedSecret): Promise<boolean>;
}

export interface OAuthFlowRepository {
  create(flow: OAuthFlowRecord): Promise<void>;
  /** Removes and returns the flow: a state is good for one redirect only. */
  take(stateHash: string): Promise<OAuthFlowRecord | undefined>;
  /** Drops flows started before `before`; returns how many. */
  removeStale(before: number): Promise<number>;
}

export interface Store {
  users: UserRepository;
  profiles: ProfileRepository;
  tokens: TokenRepository;
  servers: ServerRepository;
  credentials: CredentialRepository;
  placeholders: PlaceholderRepository;
  sealedBlobs: SealedBlobRepository;
  audit: AuditRepository;
  sessions: SessionRepository;
  apiTokens: ApiTokenRepository;
  oauthApps: OAuthAppRepository;
  oauthConnections: OAuthConnectionRepository;
  oauthFlows: OAuthFlowRepository;
  /** Bumped by every configuration change, from any process sharing the database. */
  revision(): Promise<number>;
  close(): void;
}

/** A named thing does not exist (or is not visible to the caller). */
export class NotFoundError extends Error {
  override name = "NotFoundError";
}

/** A change would break a uniqueness rule or another invariant. */
export class ConflictError extends Error {
  override name = "ConflictError";
}

/** Credential ids: no "/" so "<server>/<credential>" splits unambiguously. */
export const CREDENTIAL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Names of servers and profiles: lowercase, digits and inner hyphens, so `<server>_<tool>` splits unambiguously. */
export const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$/;
