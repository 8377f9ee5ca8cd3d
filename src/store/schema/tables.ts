/**
 * The database schema as code, written once for both dialects: each dialect
 * passes its own column builders (./sqlite.ts, ./postgres.ts). Timestamps are
 * integer milliseconds since the epoch and structured values are JSON text, so
 * the same shape maps onto SQLite and Postgres without driver-specific types.
 *
 * The builders are typed as Postgres's; SQLite's have the same shape and
 * produce the same TypeScript row types, so the repositories are written once
 * against these types (see ../repositories.ts).
 */
import { sql, type $Type } from "drizzle-orm";
import type {
  index,
  PgBigInt53BuilderInitial,
  PgBooleanBuilderInitial,
  PgIntegerBuilderInitial,
  pgTable,
  PgTextBuilderInitial,
  primaryKey,
  text,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import type { SealedSecret } from "../../vault/index.ts";
import type { ApiScope, CredentialSpec, InstalledFrom, SandboxLimits } from "../types.ts";

/** What differs between dialects in the schema: how each kind of column is declared. */
export interface ColumnBuilders {
  table: typeof pgTable;
  text: typeof text;
  /** 32-bit integer. */
  integer: (name: string) => PgIntegerBuilderInitial<string>;
  /** 53-bit integer read as a number: millisecond timestamps, counters. */
  bigInteger: (name: string) => PgBigInt53BuilderInitial<string>;
  boolean: (name: string) => PgBooleanBuilderInitial<string>;
  /** A JSON value stored as text. */
  json: <T>(name: string) => $Type<PgTextBuilderInitial<string, [string, ...string[]]>, T>;
  /** An auto-incrementing 53-bit primary key. */
  serialId: (name: string) => ReturnType<ReturnType<PgBigInt53BuilderInitial<string>["primaryKey"]>["generatedByDefaultAsIdentity"]>;
  index: typeof index;
  uniqueIndex: typeof uniqueIndex;
  primaryKey: typeof primaryKey;
}

export function defineTables(b: ColumnBuilders) {
  const users = b.table("users", {
    id: b.text("id").primaryKey(),
    email: b.text("email").notNull().unique(),
    passwordHash: b.text("password_hash"),
    role: b.text("role", { enum: ["admin", "member"] }).notNull(),
    createdAt: b.bigInteger("created_at").notNull(),
  });

  const profiles = b.table(
    "profiles",
    {
      id: b.text("id").primaryKey(),
      tenantId: b.text("tenant_id").notNull().references(() => users.id, { onDelete: "cascade" }),
      name: b.text("name").notNull(),
      prefixTools: b.boolean("prefix_tools").notNull(),
      createdAt: b.bigInteger("created_at").notNull(),
    },
    (table) => [b.uniqueIndex("profiles_tenant_name").on(table.tenantId, table.name)],
  );

  const profileTokens = b.table(
    "profile_tokens",
    {
      id: b.text("id").primaryKey(),
      profileId: b.text("profile_id").notNull().references(() => profiles.id, { onDelete: "cascade" }),
      /** SHA-256 of the token, hex. The token itself is shown once and never stored. */
      tokenHash: b.text("token_hash").notNull().unique(),
      /** The first characters of the token, enough to recognise it in a list. */
      prefix: b.text("prefix").notNull(),
      label: b.text("label").notNull(),
      createdAt: b.bigInteger("created_at").notNull(),
      lastUsedAt: b.bigInteger("last_used_at"),
    },
    (table) => [b.index("profile_tokens_profile").on(table.profileId)],
  );

  const servers = b.table("servers", {
    id: b.text("id").primaryKey(),
    name: b.text("name").notNull().unique(),
    kind: b.text("kind", { enum: ["builtin", "stdio"] }).notNull(),
    command: b.text("command").notNull(),
    args: b.json<string[]>("args").notNull(),
    env: b.json<Record<string, string>>("env").notNull(),
    egress: b.json<string[]>("egress").notNull(),
    roPaths: b.json<string[]>("ro_paths").notNull(),
    tier: b.text("tier", { enum: ["sealed", "entrusted"] }).notNull(),
    timeoutMs: b.integer("timeout_ms"),
    /** Per-server overrides of the sandbox resource limits; null uses the GIG_SANDBOX_* defaults. */
    limits: b.json<SandboxLimits | null>("limits"),
    /** Credentials the server uses: where the proxy injects them (sealed) or which variable holds them (entrusted). */
    credentials: b.json<CredentialSpec[]>("credentials").notNull().default(sql`'[]'`),
    /** Where an installed server came from (registry and image); null for servers added by hand. */
    installed: b.json<InstalledFrom | null>("installed"),
    createdAt: b.bigInteger("created_at").notNull(),
    updatedAt: b.bigInteger("updated_at").notNull(),
  });

  const profileServers = b.table(
    "profile_servers",
    {
      profileId: b.text("profile_id").notNull().references(() => profiles.id, { onDelete: "cascade" }),
      serverId: b.text("server_id").notNull().references(() => servers.id, { onDelete: "cascade" }),
      /** Tool names (unprefixed) the profile exposes; null exposes every tool. */
      tools: b.json<string[] | null>("tools"),
    },
    (table) => [b.primaryKey({ columns: [table.profileId, table.serverId] })],
  );

  const auditEvents = b.table(
    "audit_events",
    {
      id: b.serialId("id"),
      time: b.bigInteger("time").notNull(),
      action: b.text("action").notNull(),
      decision: b.text("decision", { enum: ["allow", "deny", "inject"] }).notNull(),
      actor: b.text("actor"),
      tenantId: b.text("tenant_id"),
      detail: b.json<Record<string, unknown>>("detail").notNull(),
      /** HMAC-SHA256 (hex) linking the row to the one before it (see ../audit-chain.ts); null for rows written without the audit key. */
      chain: b.text("chain"),
    },
    (table) => [b.index("audit_events_time").on(table.time), b.index("audit_events_tenant").on(table.tenantId, table.id)],
  );

  /**
   * One row (id 1): the last chained audit event. Writers lock it first in each
   * insert transaction, so the chain never forks however many processes write.
   */
  const auditHead = b.table("audit_head", {
    id: b.integer("id").primaryKey(),
    lastId: b.bigInteger("last_id").notNull(),
    lastChain: b.text("last_chain").notNull(),
  });

  /**
   * Secret values of server credentials, one per (server, credential, tenant).
   * Keyed by server name, not id, so they survive removing and re-adding a
   * server (the way a server's settings are changed).
   */
  const credentials = b.table(
    "credentials",
    {
      serverName: b.text("server_name").notNull(),
      credentialId: b.text("credential_id").notNull(),
      tenantId: b.text("tenant_id").notNull().references(() => users.id, { onDelete: "cascade" }),
      type: b.text("type", { enum: ["api_key", "basic", "oauth2"] }).notNull(),
      /** Envelope-encrypted by the vault, bound to (server/credential, tenant). */
      sealed: b.json<SealedSecret>("sealed").notNull(),
      createdAt: b.bigInteger("created_at").notNull(),
      updatedAt: b.bigInteger("updated_at").notNull(),
    },
    (table) => [b.primaryKey({ columns: [table.serverName, table.credentialId, table.tenantId] }), b.index("credentials_tenant").on(table.tenantId)],
  );

  /**
   * The stand-in a sealed server sees instead of a credential; the egress proxy
   * swaps it for the real value. Stable for the life of the data dir.
   */
  const placeholders = b.table(
    "placeholders",
    {
      serverName: b.text("server_name").notNull(),
      credentialId: b.text("credential_id").notNull(),
      tenantId: b.text("tenant_id").notNull().references(() => users.id, { onDelete: "cascade" }),
      placeholder: b.text("placeholder").notNull().unique(),
      createdAt: b.bigInteger("created_at").notNull(),
    },
    (table) => [b.primaryKey({ columns: [table.serverName, table.credentialId, table.tenantId] })],
  );

  /** Secrets of the gateway itself (such as the egress proxy's CA key), sealed by the vault. */
  const sealedBlobs = b.table("sealed_blobs", {
    name: b.text("name").primaryKey(),
    sealed: b.json<SealedSecret>("sealed").notNull(),
    createdAt: b.bigInteger("created_at").notNull(),
    updatedAt: b.bigInteger("updated_at").notNull(),
  });

  /**
   * One row, `revision`, bumped in the same transaction as every configuration
   * change; running gateways poll it to pick up edits made by the CLI or by
   * another instance.
   */
  const meta = b.table("meta", {
    key: b.text("key").primaryKey(),
    value: b.bigInteger("value").notNull().default(sql`0`),
  });

  /**
   * Browser sessions of the web console. The session id is a bearer secret:
   * only its SHA-256 is kept, as is the CSRF token's.
   */
  const sessions = b.table(
    "sessions",
    {
      idHash: b.text("id_hash").primaryKey(),
      userId: b.text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
      csrfHash: b.text("csrf_hash").notNull(),
      createdAt: b.bigInteger("created_at").notNull(),
      lastSeenAt: b.bigInteger("last_seen_at").notNull(),
      /** Moves forward with use (never past absoluteExpiresAt). */
      idleExpiresAt: b.bigInteger("idle_expires_at").notNull(),
      absoluteExpiresAt: b.bigInteger("absolute_expires_at").notNull(),
    },
    (table) => [b.index("sessions_user").on(table.userId), b.index("sessions_absolute_expiry").on(table.absoluteExpiresAt)],
  );

  /** Tokens for scripts calling the management API; like profile tokens, only the hash is kept. */
  const apiTokens = b.table(
    "api_tokens",
    {
      id: b.text("id").primaryKey(),
      userId: b.text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
      tokenHash: b.text("token_hash").notNull().unique(),
      prefix: b.text("prefix").notNull(),
      label: b.text("label").notNull(),
      scopes: b.json<ApiScope[]>("scopes").notNull(),
      createdAt: b.bigInteger("created_at").notNull(),
      expiresAt: b.bigInteger("expires_at").notNull(),
      lastUsedAt: b.bigInteger("last_used_at"),
    },
    (table) => [b.index("api_tokens_user").on(table.userId)],
  );

  /** OAuth apps an admin registered at vendors (one per vendor); the client secret is sealed. */
  const oauthApps = b.table("oauth_apps", {
    vendor: b.text("vendor").primaryKey(),
    clientId: b.text("client_id").notNull(),
    authorizeUrl: b.text("authorize_url"),
    tokenUrl: b.text("token_url"),
    revokeUrl: b.text("revoke_url"),
    scopes: b.json<string[] | null>("scopes"),
    pkce: b.boolean("pkce"),
    clientSecret: b.json<SealedSecret | null>("client_secret"),
    createdAt: b.bigInteger("created_at").notNull(),
    updatedAt: b.bigInteger("updated_at").notNull(),
  });

  /** Each tenant's connection to a vendor: its tokens sealed to (vendor, tenant), and whether it still works. */
  const oauthConnections = b.table(
    "oauth_connections",
    {
      vendor: b.text("vendor").notNull(),
      tenantId: b.text("tenant_id").notNull().references(() => users.id, { onDelete: "cascade" }),
      status: b.text("status", { enum: ["connected", "needs_reconnect"] }).notNull(),
      scopes: b.json<string[]>("scopes").notNull(),
      expiresAt: b.bigInteger("expires_at"),
      problem: b.text("problem"),
      sealed: b.json<SealedSecret>("sealed").notNull(),
      // Bumped whenever the tokens change: a refresh claims the row only at the version it read.
      version: b.integer("version").notNull().default(0),
      // While set and in the future, one instance is refreshing; a crashed one's lease runs out.
      refreshingUntil: b.bigInteger("refreshing_until"),
      createdAt: b.bigInteger("created_at").notNull(),
      updatedAt: b.bigInteger("updated_at").notNull(),
    },
    (table) => [b.primaryKey({ columns: [table.vendor, table.tenantId] }), b.index("oauth_connections_tenant").on(table.tenantId)],
  );

  /** Connect flows waiting for the vendor's redirect, keyed by the SHA-256 of their state; each is used once. */
  const oauthFlows = b.table(
    "oauth_flows",
    {
      stateHash: b.text("state_hash").primaryKey(),
      vendor: b.text("vendor").notNull(),
      tenantId: b.text("tenant_id").notNull().references(() => users.id, { onDelete: "cascade" }),
      sessionUserId: b.text("session_user_id"),
      sealed: b.json<SealedSecret>("sealed").notNull(),
      createdAt: b.bigInteger("created_at").notNull(),
    },
    (table) => [b.index("oauth_flows_created").on(table.createdAt)],
  );

  return {
    users,
    profiles,
    profileTokens,
    servers,
    profileServers,
    auditEvents,
    auditHead,
    credentials,
    placeholders,
    sealedBlobs,
    meta,
    sessions,
    apiTokens,
    oauthApps,
    oauthConnections,
    oauthFlows,
  };
}

export type Tables = ReturnType<typeof defineTables>;
