import { Database } from "bun:sqlite";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { and, asc, eq, gt, gte, desc, lt, lte, or, sql, type SQL } from "drizzle-orm";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import * as schema from "./schema.ts";
import { embeddedMigrations } from "./migrations.ts";
import { credentialSpecProblem } from "./credential-specs.ts";
import type { SealedSecret } from "../vault/index.ts";
import {
  ConflictError,
  CREDENTIAL_ID_PATTERN,
  NAME_PATTERN,
  NotFoundError,
  type ApiToken,
  type AuditEvent,
  type AuditFilter,
  type Role,
  type CredentialKey,
  type CredentialMetadata,
  type CredentialRecord,
  type CredentialType,
  type Profile,
  type ProfileToken,
  type SealedBlob,
  type Server,
  type ServerSpec,
  type SessionRecord,
  type Store,
  type User,
} from "./types.ts";

type Db = BunSQLiteDatabase<typeof schema>;

const TOKEN_PREFIX = "gig_";
const TOKEN_DISPLAY_LENGTH = 12;

export function hashToken(token: string): string {
  return new Bun.CryptoHasher("sha256").update(token).digest("hex");
}

function newToken(): string {
  return TOKEN_PREFIX + Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}

function checkName(kind: string, name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new ConflictError(
      `invalid ${kind} name ${JSON.stringify(name)}: use 1-64 lowercase letters, digits and inner hyphens (no "_")`,
    );
  }
}

function checkCredentialId(id: string): void {
  if (!CREDENTIAL_ID_PATTERN.test(id)) {
    throw new ConflictError(`invalid credential id ${JSON.stringify(id)}: use 1-64 letters, digits, "_", "." or "-", starting with a letter or digit`);
  }
}

function checkCredentialSpecs(spec: ServerSpec): void {
  const problem = credentialSpecProblem(spec.tier, spec.credentials, spec.env);
  if (problem) throw new ConflictError(`server ${spec.name}: ${problem}`);
}

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Error && /UNIQUE constraint failed/.test(error.message);
}

function isForeignKeyViolation(error: unknown): boolean {
  return error instanceof Error && /FOREIGN KEY constraint failed/.test(error.message);
}

function newPlaceholder(): string {
  return `gigph-${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex")}`;
}

function credentialWhere(key: CredentialKey): SQL {
  return and(
    eq(schema.credentials.serverName, key.serverName),
    eq(schema.credentials.credentialId, key.credentialId),
    eq(schema.credentials.tenantId, key.tenantId),
  )!;
}

/** The compare half of compare-and-swap on a sealed column: every wrap has a fresh nonce, so the wrapped key identifies the value. */
function stillSealedAs(column: typeof schema.credentials.sealed | typeof schema.sealedBlobs.sealed, expected: SealedSecret): SQL {
  return sql`json_extract(${column}, '$.wrappedKey') = ${expected.wrappedKey}`;
}

/** Opens (creating if needed) the SQLite database at `sqlite:PATH` and applies migrations. */
export function openStore(dbUrl: string): Store {
  const path = dbUrl.slice("sqlite:".length);
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const creating = path !== ":memory:" && !existsSync(path);
  const client = new Database(path, { create: true, strict: true });
  // It holds sealed secrets and token hashes: private to the gateway's user (SQLite gives -wal/-shm the same mode).
  if (creating) chmodSync(path, 0o600);
  client.exec("PRAGMA journal_mode = WAL");
  client.exec("PRAGMA busy_timeout = 5000");
  client.exec("PRAGMA foreign_keys = ON");
  client.exec("PRAGMA synchronous = NORMAL");
  const db: Db = drizzle({ client, schema });
  // drizzle's file-based migrate() reads a folder; the binary embeds the files, so the
  // same dialect migrator is called with them directly.
  const internals = db as unknown as { dialect: { migrate(m: unknown, s: unknown, c: object): void }; session: unknown };
  internals.dialect.migrate(embeddedMigrations(), internals.session, {});
  return new SqliteStore(db, client);
}

class SqliteStore implements Store {
  constructor(
    private readonly db: Db,
    private readonly client: Database,
  ) {}

  /** Runs a configuration change and bumps the revision in one transaction. */
  private change<T>(work: (tx: Db) => T): T {
    return this.db.transaction((tx) => {
      const result = work(tx as unknown as Db);
      tx.insert(schema.meta)
        .values({ key: "revision", value: 1 })
        .onConflictDoUpdate({ target: schema.meta.key, set: { value: sql`${schema.meta.value} + 1` } })
        .run();
      return result;
    });
  }

  async revision(): Promise<number> {
    const row = this.db.select({ value: schema.meta.value }).from(schema.meta).where(eq(schema.meta.key, "revision")).get();
    return row?.value ?? 0;
  }

  close(): void {
    this.client.close();
  }

  users = {
    create: async (input: { email: string; role: User["role"]; passwordHash?: string | null }): Promise<User> => {
      const user: User = { id: crypto.randomUUID(), email: input.email.trim().toLowerCase(), role: input.role, createdAt: Date.now() };
      try {
        this.change((tx) => tx.insert(schema.users).values({ ...user, passwordHash: input.passwordHash ?? null }).run());
      } catch (error) {
        if (isUniqueViolation(error)) throw new ConflictError(`a user with email ${user.email} already exists`);
        throw error;
      }
      return user;
    },
    list: async (): Promise<User[]> =>
      this.db.select(userColumns).from(schema.users).orderBy(asc(schema.users.createdAt)).all(),
    byEmail: async (email: string): Promise<User | undefined> =>
      this.db.select(userColumns).from(schema.users).where(eq(schema.users.email, email.trim().toLowerCase())).get(),
    firstAdmin: async (): Promise<User | undefined> =>
      this.db
        .select(userColumns)
        .from(schema.users)
        .where(eq(schema.users.role, "admin"))
        .orderBy(asc(schema.users.createdAt), asc(schema.users.id))
        .limit(1)
        .get(),
    byId: async (id: string): Promise<User | undefined> => this.db.select(userColumns).from(schema.users).where(eq(schema.users.id, id)).get(),
    withPasswordHash: async (email: string) => {
      const row = this.db
        .select({ ...userColumns, passwordHash: schema.users.passwordHash })
        .from(schema.users)
        .where(eq(schema.users.email, email.trim().toLowerCase()))
        .get();
      if (!row) return undefined;
      const { passwordHash, ...user } = row;
      return { user, passwordHash };
    },
    // Passwords are not gateway configuration: no revision bump.
    setPasswordHash: async (userId: string, passwordHash: string | null): Promise<void> => {
      const updated = this.db.update(schema.users).set({ passwordHash }).where(eq(schema.users.id, userId)).returning({ id: schema.users.id }).all();
      if (updated.length === 0) throw new NotFoundError("no such user (see `gigmcp user list`)");
    },
    setRole: async (userId: string, role: Role): Promise<void> => {
      const updated = this.change((tx) => tx.update(schema.users).set({ role }).where(eq(schema.users.id, userId)).returning({ id: schema.users.id }).all());
      if (updated.length === 0) throw new NotFoundError("no such user (see `gigmcp user list`)");
    },
  };

  // Sessions are runtime state of the web console, not configuration: no revision bump.
  sessions = {
    create: async (session: SessionRecord): Promise<void> => {
      this.db.insert(schema.sessions).values(session).run();
    },
    byIdHash: async (idHash: string) =>
      this.db
        .select({ session: schema.sessions, user: userColumns })
        .from(schema.sessions)
        .innerJoin(schema.users, eq(schema.users.id, schema.sessions.userId))
        .where(eq(schema.sessions.idHash, idHash))
        .get(),
    touch: async (idHash: string, lastSeenAt: number, idleExpiresAt: number): Promise<void> => {
      this.db.update(schema.sessions).set({ lastSeenAt, idleExpiresAt }).where(eq(schema.sessions.idHash, idHash)).run();
    },
    remove: async (idHash: string): Promise<number> => this.deleteSessions(eq(schema.sessions.idHash, idHash)),
    removeForUser: async (userId: string): Promise<number> => this.deleteSessions(eq(schema.sessions.userId, userId)),
    removeExpired: async (now: number): Promise<number> =>
      this.deleteSessions(or(lte(schema.sessions.idleExpiresAt, now), lte(schema.sessions.absoluteExpiresAt, now))!),
  };

  // API tokens are checked on every request, not cached by running gateways: no revision bump.
  apiTokens = {
    create: async (token: ApiToken & { tokenHash: string }): Promise<void> => {
      try {
        this.db.insert(schema.apiTokens).values(token).run();
      } catch (error) {
        if (isForeignKeyViolation(error)) throw new NotFoundError("no such user (see `gigmcp user list`)");
        throw error;
      }
    },
    byHash: async (tokenHash: string) =>
      this.db
        .select({ token: apiTokenColumns, user: userColumns })
        .from(schema.apiTokens)
        .innerJoin(schema.users, eq(schema.users.id, schema.apiTokens.userId))
        .where(eq(schema.apiTokens.tokenHash, tokenHash))
        .get(),
    list: async (userId: string): Promise<ApiToken[]> =>
      this.db.select(apiTokenColumns).from(schema.apiTokens).where(eq(schema.apiTokens.userId, userId)).orderBy(asc(schema.apiTokens.createdAt)).all(),
    revoke: async (userId: string, idOrPrefix: string): Promise<ApiToken[]> =>
      this.db
        .delete(schema.apiTokens)
        .where(and(eq(schema.apiTokens.userId, userId), or(eq(schema.apiTokens.id, idOrPrefix), eq(schema.apiTokens.prefix, idOrPrefix))))
        .returning(apiTokenColumns)
        .all(),
    markUsed: async (id: string, at: number): Promise<void> => {
      this.db.update(schema.apiTokens).set({ lastUsedAt: at }).where(eq(schema.apiTokens.id, id)).run();
    },
  };

  profiles = {
    create: async (tenantId: string, name: string, options: { prefixTools: boolean }): Promise<Profile> => {
      checkName("profile", name);
      const profile: Profile = { id: crypto.randomUUID(), tenantId, name, prefixTools: options.prefixTools, createdAt: Date.now() };
      try {
        this.change((tx) => tx.insert(schema.profiles).values(profile).run());
      } catch (error) {
        if (isUniqueViolation(error)) throw new ConflictError(`profile ${name} already exists`);
        throw error;
      }
      return profile;
    },
    list: async (tenantId?: string): Promise<Profile[]> =>
      this.db
        .select()
        .from(schema.profiles)
        .where(tenantId === undefined ? undefined : eq(schema.profiles.tenantId, tenantId))
        .orderBy(asc(schema.profiles.name))
        .all(),
    get: async (tenantId: string, name: string): Promise<Profile> => this.profileByName(tenantId, name),
    delete: async (tenantId: string, name: string): Promise<void> => {
      const profile = this.profileByName(tenantId, name);
      this.change((tx) => tx.delete(schema.profiles).where(eq(schema.profiles.id, profile.id)).run());
    },
    addServer: async (profileId: string, serverName: string, tools: string[] | null): Promise<void> => {
      const server = this.serverByName(serverName);
      this.change((tx) =>
        tx
          .insert(schema.profileServers)
          .values({ profileId, serverId: server.id, tools })
          .onConflictDoUpdate({ target: [schema.profileServers.profileId, schema.profileServers.serverId], set: { tools } })
          .run(),
      );
    },
    removeServer: async (profileId: string, serverName: string): Promise<void> => {
      const server = this.serverByName(serverName);
      const removed = this.change((tx) =>
        tx
          .delete(schema.profileServers)
          .where(and(eq(schema.profileServers.profileId, profileId), eq(schema.profileServers.serverId, server.id)))
          .returning({ serverId: schema.profileServers.serverId })
          .all(),
      );
      if (removed.length === 0) throw new NotFoundError(`server ${serverName} is not in this profile`);
    },
    members: async (profileId: string) =>
      this.db
        .select({ server: schema.servers, tools: schema.profileServers.tools })
        .from(schema.profileServers)
        .innerJoin(schema.servers, eq(schema.servers.id, schema.profileServers.serverId))
        .where(eq(schema.profileServers.profileId, profileId))
        .orderBy(asc(schema.servers.name))
        .all(),
  };

  tokens = {
    create: async (profileId: string, label: string) => {
      const token = newToken();
      const record: ProfileToken = {
        id: crypto.randomUUID(),
        profileId,
        prefix: token.slice(0, TOKEN_DISPLAY_LENGTH),
        label,
        createdAt: Date.now(),
        lastUsedAt: null,
      };
      this.change((tx) => tx.insert(schema.profileTokens).values({ ...record, tokenHash: hashToken(token) }).run());
      return { token, record };
    },
    // Lookup is by SHA-256 of the presented token: an attacker cannot steer the
    // hash, so the index comparison leaks nothing useful about stored tokens.
    resolve: async (token: string) => {
      if (!token.startsWith(TOKEN_PREFIX) || token.length > 128) return undefined;
      const tokenHash = hashToken(token);
      const row = this.db
        .select({ tokenId: schema.profileTokens.id, profile: schema.profiles })
        .from(schema.profileTokens)
        .innerJoin(schema.profiles, eq(schema.profiles.id, schema.profileTokens.profileId))
        .where(eq(schema.profileTokens.tokenHash, tokenHash))
        .get();
      return row && { ...row, tokenHash };
    },
    list: async (profileId: string): Promise<ProfileToken[]> =>
      this.db
        .select(tokenColumns)
        .from(schema.profileTokens)
        .where(eq(schema.profileTokens.profileId, profileId))
        .orderBy(asc(schema.profileTokens.createdAt))
        .all(),
    exists: async (tokenId: string): Promise<boolean> =>
      this.db.select({ id: schema.profileTokens.id }).from(schema.profileTokens).where(eq(schema.profileTokens.id, tokenId)).get() !== undefined,
    revoke: async (profileId: string, idOrPrefix: string): Promise<number> =>
      this.deleteTokens(
        and(
          eq(schema.profileTokens.profileId, profileId),
          idOrPrefix.startsWith(TOKEN_PREFIX)
            ? eq(schema.profileTokens.prefix, idOrPrefix.slice(0, TOKEN_DISPLAY_LENGTH))
            : eq(schema.profileTokens.id, idOrPrefix),
        )!,
      ),
    revokeByLabel: async (profileId: string, label: string): Promise<number> =>
      this.deleteTokens(and(eq(schema.profileTokens.profileId, profileId), eq(schema.profileTokens.label, label))!),
    markUsed: async (tokenId: string, at: number): Promise<void> => {
      this.db.update(schema.profileTokens).set({ lastUsedAt: at }).where(eq(schema.profileTokens.id, tokenId)).run();
    },
  };

  servers = {
    create: async (spec: ServerSpec): Promise<Server> => {
      checkName("server", spec.name);
      checkCredentialSpecs(spec);
      const now = Date.now();
      const server: Server = { ...spec, id: crypto.randomUUID(), createdAt: now, updatedAt: now };
      try {
        this.change((tx) => tx.insert(schema.servers).values(server).run());
      } catch (error) {
        if (isUniqueViolation(error)) throw new ConflictError(`server ${spec.name} already exists (remove it first)`);
        throw error;
      }
      return server;
    },
    upsert: async (spec: ServerSpec): Promise<Server> => {
      checkName("server", spec.name);
      checkCredentialSpecs(spec);
      const now = Date.now();
      this.change((tx) =>
        tx
          .insert(schema.servers)
          .values({ ...spec, id: crypto.randomUUID(), createdAt: now, updatedAt: now })
          .onConflictDoUpdate({ target: schema.servers.name, set: { ...spec, updatedAt: now } })
          .run(),
      );
      return this.serverByName(spec.name);
    },
    list: async (): Promise<Server[]> => this.db.select().from(schema.servers).orderBy(asc(schema.servers.name)).all(),
    get: async (name: string): Promise<Server> => this.serverByName(name),
    remove: async (name: string): Promise<void> => {
      const server = this.serverByName(name);
      this.change((tx) => tx.delete(schema.servers).where(eq(schema.servers.id, server.id)).run());
    },
  };

  credentials = {
    set: async (input: CredentialKey & { type: CredentialType; sealed: SealedSecret }) => {
      checkName("server", input.serverName);
      checkCredentialId(input.credentialId);
      const now = Date.now();
      try {
        return this.change((tx) => {
          const existing = tx.select({ createdAt: schema.credentials.createdAt }).from(schema.credentials).where(credentialWhere(input)).get();
          tx.insert(schema.credentials)
            .values({ ...input, createdAt: now, updatedAt: now })
            .onConflictDoUpdate({
              target: [schema.credentials.serverName, schema.credentials.credentialId, schema.credentials.tenantId],
              set: { type: input.type, sealed: input.sealed, updatedAt: now },
            })
            .run();
          const record: CredentialMetadata = {
            serverName: input.serverName,
            credentialId: input.credentialId,
            tenantId: input.tenantId,
            type: input.type,
            createdAt: existing?.createdAt ?? now,
            updatedAt: now,
          };
          return { record, replaced: existing !== undefined };
        });
      } catch (error) {
        if (isForeignKeyViolation(error)) throw new NotFoundError("no such user: the credential's tenant does not exist (see `gigmcp user list`)");
        throw error;
      }
    },
    get: async (serverName: string, credentialId: string, tenantId: string): Promise<CredentialRecord | undefined> =>
      this.db.select().from(schema.credentials).where(credentialWhere({ serverName, credentialId, tenantId })).get(),
    list: async (tenantId?: string): Promise<CredentialMetadata[]> =>
      this.db
        .select(credentialColumns)
        .from(schema.credentials)
        .where(tenantId === undefined ? undefined : eq(schema.credentials.tenantId, tenantId))
        .orderBy(asc(schema.credentials.serverName), asc(schema.credentials.credentialId), asc(schema.credentials.tenantId))
        .all(),
    remove: async (serverName: string, credentialId: string, tenantId: string): Promise<void> => {
      const removed = this.change((tx) =>
        tx.delete(schema.credentials).where(credentialWhere({ serverName, credentialId, tenantId })).returning({ id: schema.credentials.credentialId }).all(),
      );
      if (removed.length === 0) throw new NotFoundError(`no credential ${serverName}/${credentialId} is set for this tenant (see \`gigmcp credential list\`)`);
    },
    all: async (): Promise<CredentialRecord[]> => this.db.select().from(schema.credentials).all(),
    rewrap: async (key: CredentialKey, expected: SealedSecret, replacement: SealedSecret): Promise<boolean> =>
      this.db
        .update(schema.credentials)
        .set({ sealed: replacement })
        .where(and(credentialWhere(key), stillSealedAs(schema.credentials.sealed, expected)))
        .returning({ id: schema.credentials.credentialId })
        .all().length === 1,
  };

  // Placeholders are runtime state created by the gateway, not configuration: no revision bump.
  placeholders = {
    getOrCreate: async (serverName: string, credentialId: string, tenantId: string): Promise<string> => {
      const key = { serverName, credentialId, tenantId };
      this.db
        .insert(schema.placeholders)
        .values({ ...key, placeholder: newPlaceholder(), createdAt: Date.now() })
        .onConflictDoNothing({ target: [schema.placeholders.serverName, schema.placeholders.credentialId, schema.placeholders.tenantId] })
        .run();
      return this.db
        .select({ placeholder: schema.placeholders.placeholder })
        .from(schema.placeholders)
        .where(
          and(
            eq(schema.placeholders.serverName, serverName),
            eq(schema.placeholders.credentialId, credentialId),
            eq(schema.placeholders.tenantId, tenantId),
          ),
        )
        .get()!.placeholder;
    },
    resolve: async (placeholder: string): Promise<CredentialKey | undefined> =>
      this.db
        .select({ serverName: schema.placeholders.serverName, credentialId: schema.placeholders.credentialId, tenantId: schema.placeholders.tenantId })
        .from(schema.placeholders)
        .where(eq(schema.placeholders.placeholder, placeholder))
        .get(),
  };

  // Gateway-owned secrets, written by the gateway itself: not configuration, no revision bump.
  sealedBlobs = {
    get: async (name: string): Promise<SealedBlob | undefined> =>
      this.db.select().from(schema.sealedBlobs).where(eq(schema.sealedBlobs.name, name)).get(),
    put: async (name: string, sealed: SealedSecret): Promise<void> => {
      const now = Date.now();
      this.db
        .insert(schema.sealedBlobs)
        .values({ name, sealed, createdAt: now, updatedAt: now })
        .onConflictDoUpdate({ target: schema.sealedBlobs.name, set: { sealed, updatedAt: now } })
        .run();
    },
    all: async (): Promise<SealedBlob[]> => this.db.select().from(schema.sealedBlobs).all(),
    rewrap: async (name: string, expected: SealedSecret, replacement: SealedSecret): Promise<boolean> =>
      this.db
        .update(schema.sealedBlobs)
        .set({ sealed: replacement })
        .where(and(eq(schema.sealedBlobs.name, name), stillSealedAs(schema.sealedBlobs.sealed, expected)))
        .returning({ name: schema.sealedBlobs.name })
        .all().length === 1,
  };

  audit = {
    record: async (event: Parameters<Store["audit"]["record"]>[0]): Promise<AuditEvent> =>
      this.db
        .insert(schema.auditEvents)
        .values({
          time: Date.now(),
          action: event.action,
          decision: event.decision,
          actor: event.actor ?? null,
          tenantId: event.tenantId ?? null,
          detail: event.detail ?? {},
        })
        .returning()
        .get(),
    list: async (filter: AuditFilter = {}): Promise<AuditEvent[]> =>
      this.db
        .select()
        .from(schema.auditEvents)
        .where(
          and(
            filter.tenantId === undefined ? undefined : eq(schema.auditEvents.tenantId, filter.tenantId),
            filter.afterId === undefined ? undefined : gt(schema.auditEvents.id, filter.afterId),
            filter.beforeId === undefined ? undefined : lt(schema.auditEvents.id, filter.beforeId),
            filter.since === undefined ? undefined : gte(schema.auditEvents.time, filter.since),
            filter.action === undefined ? undefined : eq(schema.auditEvents.action, filter.action),
            filter.decision === undefined ? undefined : eq(schema.auditEvents.decision, filter.decision),
            filter.actor === undefined ? undefined : eq(schema.auditEvents.actor, filter.actor),
          ),
        )
        .orderBy(filter.afterId === undefined ? desc(schema.auditEvents.id) : asc(schema.auditEvents.id))
        .limit(Math.min(filter.limit ?? 100, 1000))
        .all(),
  };

  private profileByName(tenantId: string, name: string): Profile {
    const profile = this.db
      .select()
      .from(schema.profiles)
      .where(and(eq(schema.profiles.tenantId, tenantId), eq(schema.profiles.name, name)))
      .get();
    if (!profile) throw new NotFoundError(`no profile named ${name} (see \`gigmcp profile list\`)`);
    return profile;
  }

  private serverByName(name: string): Server {
    const server = this.db.select().from(schema.servers).where(eq(schema.servers.name, name)).get();
    if (!server) throw new NotFoundError(`no server named ${name} (see \`gigmcp server list\`)`);
    return server;
  }

  private deleteSessions(where: SQL): number {
    return this.db.delete(schema.sessions).where(where).returning({ idHash: schema.sessions.idHash }).all().length;
  }

  private deleteTokens(where: SQL): number {
    return this.change((tx) => tx.delete(schema.profileTokens).where(where).returning({ id: schema.profileTokens.id }).all()).length;
  }
}

const userColumns = {
  id: schema.users.id,
  email: schema.users.email,
  role: schema.users.role,
  createdAt: schema.users.createdAt,
};

const credentialColumns = {
  serverName: schema.credentials.serverName,
  credentialId: schema.credentials.credentialId,
  tenantId: schema.credentials.tenantId,
  type: schema.credentials.type,
  createdAt: schema.credentials.createdAt,
  updatedAt: schema.credentials.updatedAt,
};

const tokenColumns = {
  id: schema.profileTokens.id,
  profileId: schema.profileTokens.profileId,
  prefix: schema.profileTokens.prefix,
  label: schema.profileTokens.label,
  createdAt: schema.profileTokens.createdAt,
  lastUsedAt: schema.profileTokens.lastUsedAt,
};

const apiTokenColumns = {
  id: schema.apiTokens.id,
  userId: schema.apiTokens.userId,
  prefix: schema.apiTokens.prefix,
  label: schema.apiTokens.label,
  scopes: schema.apiTokens.scopes,
  createdAt: schema.apiTokens.createdAt,
  expiresAt: schema.apiTokens.expiresAt,
  lastUsedAt: schema.apiTokens.lastUsedAt,
};
