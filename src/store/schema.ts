/**
 * The database schema as code. Timestamps are integer milliseconds since the
 * epoch and structured values are JSON text, so the same shape maps onto
 * SQLite and Postgres without driver-specific types.
 */
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import type { SealedSecret } from "../vault/index.ts";
import type { ApiScope, CredentialSpec, InstalledFrom, SandboxLimits } from "./types.ts";

export const users = sqliteTable("users", {
  id: text("id").primaryKey(),
  email: text("email").notNull().unique(),
  passwordHash: text("password_hash"),
  role: text("role", { enum: ["admin", "member"] }).notNull(),
  createdAt: integer("created_at").notNull(),
});

export const profiles = sqliteTable(
  "profiles",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    prefixTools: integer("prefix_tools", { mode: "boolean" }).notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (table) => [uniqueIndex("profiles_tenant_name").on(table.tenantId, table.name)],
);

export const profileTokens = sqliteTable(
  "profile_tokens",
  {
    id: text("id").primaryKey(),
    profileId: text("profile_id").notNull().references(() => profiles.id, { onDelete: "cascade" }),
    /** SHA-256 of the token, hex. The token itself is shown once and never stored. */
    tokenHash: text("token_hash").notNull().unique(),
    /** The first characters of the token, enough to recognise it in a list. */
    prefix: text("prefix").notNull(),
    label: text("label").notNull(),
    createdAt: integer("created_at").notNull(),
    lastUsedAt: integer("last_used_at"),
  },
  (table) => [index("profile_tokens_profile").on(table.profileId)],
);

export const servers = sqliteTable("servers", {
  id: text("id").primaryKey(),
  name: text("name").notNull().unique(),
  kind: text("kind", { enum: ["builtin", "stdio"] }).notNull(),
  command: text("command").notNull(),
  args: text("args", { mode: "json" }).$type<string[]>().notNull(),
  env: text("env", { mode: "json" }).$type<Record<string, string>>().notNull(),
  egress: text("egress", { mode: "json" }).$type<string[]>().notNull(),
  roPaths: text("ro_paths", { mode: "json" }).$type<string[]>().notNull(),
  tier: text("tier", { enum: ["sealed", "entrusted"] }).notNull(),
  timeoutMs: integer("timeout_ms"),
  /** Per-server overrides of the sandbox resource limits; null uses the GIG_SANDBOX_* defaults. */
  limits: text("limits", { mode: "json" }).$type<SandboxLimits | null>(),
  /** Credentials the server uses: where the proxy injects them (sealed) or which variable holds them (entrusted). */
  credentials: text("credentials", { mode: "json" }).$type<CredentialSpec[]>().notNull().default(sql`'[]'`),
  /** Where an installed server came from (registry and image); null for servers added by hand. */
  installed: text("installed", { mode: "json" }).$type<InstalledFrom | null>(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export const profileServers = sqliteTable(
  "profile_servers",
  {
    profileId: text("profile_id").notNull().references(() => profiles.id, { onDelete: "cascade" }),
    serverId: text("server_id").notNull().references(() => servers.id, { onDelete: "cascade" }),
    /** Tool names (unprefixed) the profile exposes; null exposes every tool. */
    tools: text("tools", { mode: "json" }).$type<string[] | null>(),
  },
  (table) => [primaryKey({ columns: [table.profileId, table.serverId] })],
);

export const auditEvents = sqliteTable(
  "audit_events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    time: integer("time").notNull(),
    action: text("action").notNull(),
    decision: text("decision", { enum: ["allow", "deny", "inject"] }).notNull(),
    actor: text("actor"),
    tenantId: text("tenant_id"),
    detail: text("detail", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
  },
  (table) => [index("audit_events_time").on(table.time), index("audit_events_tenant").on(table.tenantId, table.id)],
);

/**
 * Secret values of server credentials, one per (server, credential, tenant).
 * Keyed by server name, not id, so they survive removing and re-adding a
 * server (the way a server's settings are changed).
 */
export const credentials = sqliteTable(
  "credentials",
  {
    serverName: text("server_name").notNull(),
    credentialId: text("credential_id").notNull(),
    tenantId: text("tenant_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    type: text("type", { enum: ["api_key", "basic", "oauth2"] }).notNull(),
    /** Envelope-encrypted by the vault, bound to (server/credential, tenant). */
    sealed: text("sealed", { mode: "json" }).$type<SealedSecret>().notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (table) => [primaryKey({ columns: [table.serverName, table.credentialId, table.tenantId] }), index("credentials_tenant").on(table.tenantId)],
);

/**
 * The stand-in a sealed server sees instead of a credential; the egress proxy
 * swaps it for the real value. Stable for the life of the data dir.
 */
export const placeholders = sqliteTable(
  "placeholders",
  {
    serverName: text("server_name").notNull(),
    credentialId: text("credential_id").notNull(),
    tenantId: text("tenant_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    placeholder: text("placeholder").notNull().unique(),
    createdAt: integer("created_at").notNull(),
  },
  (table) => [primaryKey({ columns: [table.serverName, table.credentialId, table.tenantId] })],
);

/** Secrets of the gateway itself (such as the egress proxy's CA key), sealed by the vault. */
export const sealedBlobs = sqliteTable("sealed_blobs", {
  name: text("name").primaryKey(),
  sealed: text("sealed", { mode: "json" }).$type<SealedSecret>().notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

/**
 * One row, `revision`, bumped in the same transaction as every configuration
 * change; running gateways poll it to pick up edits made by the CLI or by
 * another instance.
 */
export const meta = sqliteTable("meta", {
  key: text("key").primaryKey(),
  value: integer("value").notNull().default(sql`0`),
});

/**
 * Browser sessions of the web console. The session id is a bearer secret:
 * only its SHA-256 is kept, as is the CSRF token's.
 */
export const sessions = sqliteTable(
  "sessions",
  {
    idHash: text("id_hash").primaryKey(),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    csrfHash: text("csrf_hash").notNull(),
    createdAt: integer("created_at").notNull(),
    lastSeenAt: integer("last_seen_at").notNull(),
    /** Moves forward with use (never past absoluteExpiresAt). */
    idleExpiresAt: integer("idle_expires_at").notNull(),
    absoluteExpiresAt: integer("absolute_expires_at").notNull(),
  },
  (table) => [index("sessions_user").on(table.userId), index("sessions_absolute_expiry").on(table.absoluteExpiresAt)],
);

/** Tokens for scripts calling the management API; like profile tokens, only the hash is kept. */
export const apiTokens = sqliteTable(
  "api_tokens",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    tokenHash: text("token_hash").notNull().unique(),
    prefix: text("prefix").notNull(),
    label: text("label").notNull(),
    scopes: text("scopes", { mode: "json" }).$type<ApiScope[]>().notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    lastUsedAt: integer("last_used_at"),
  },
  (table) => [index("api_tokens_user").on(table.userId)],
);
