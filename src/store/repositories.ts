/**
 * Every repository, written once against drizzle's query builder; the
 * dialect (./sqlite.ts or ./postgres.ts) supplies the connection, tables,
 * transactions and constraint errors.
 */
import { and, asc, eq, getTableColumns, gt, gte, desc, inArray, isNull, lt, lte, or, sql, type SQL } from "drizzle-orm";
import { CHAIN_START, chainLink, ChainWalk } from "./audit-chain.ts";
import { credentialSpecProblem } from "./credential-specs.ts";
import type { Db, Dialect } from "./dialect.ts";
import type { SealedSecret } from "../vault/index.ts";
import {
  ConflictError,
  CREDENTIAL_ID_PATTERN,
  NAME_PATTERN,
  NotFoundError,
  type ApiToken,
  type AuditBucket,
  type AuditEvent,
  type AuditRecord,
  type AuditFilter,
  type AuditSummaryFilter,
  type AuditVerification,
  type Role,
  type CredentialKey,
  type CredentialMetadata,
  type CredentialRecord,
  type CredentialType,
  type OAuthAppRecord,
  type OAuthConnection,
  type OAuthConnectionRecord,
  type OAuthFlowRecord,
  type RefreshedTokens,
  type Profile,
  type ProfileToken,
  type SealedBlob,
  type Server,
  type ServerSpec,
  type SessionRecord,
  type Store,
  type User,
} from "./types.ts";

const TOKEN_PREFIX = "gig_";
/** Audit events read per query while verifying the chain. */
const VERIFY_PAGE = 1000;
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

function newPlaceholder(): string {
  return `gigph-${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex")}`;
}

function first<T>(rows: T[]): T | undefined {
  return rows[0];
}

export class DrizzleStore implements Store {
  private readonly db: Db;
  private readonly t: Dialect["tables"];

  constructor(private readonly dialect: Dialect) {
    this.db = dialect.db;
    this.t = dialect.tables;
  }

  /** Runs a configuration change and bumps the revision in one transaction. */
  private change<T>(work: (tx: Db) => Promise<T>): Promise<T> {
    return this.dialect.transaction(async (tx) => {
      const result = await work(tx);
      await tx
        .insert(this.t.meta)
        .values({ key: "revision", value: 1 })
        .onConflictDoUpdate({ target: this.t.meta.key, set: { value: sql`${this.t.meta.value} + 1` } });
      return result;
    });
  }

  /** Runs `write`, turning the driver's unique or foreign key violation into the caller's clear error. */
  private async constrained<T>(write: () => Promise<T>, messages: { unique?: () => Error; foreignKey?: () => Error }): Promise<T> {
    try {
      return await write();
    } catch (error) {
      const violation = this.dialect.violation(error);
      if (violation === "unique" && messages.unique) throw messages.unique();
      if (violation === "foreign-key" && messages.foreignKey) throw messages.foreignKey();
      throw error;
    }
  }

  async revision(): Promise<number> {
    const row = await this.db.select({ value: this.t.meta.value }).from(this.t.meta).where(eq(this.t.meta.key, "revision")).then(first);
    return row?.value ?? 0;
  }

  close(): void {
    void this.dialect.close();
  }

  private get userColumns() {
    const { users } = this.t;
    return { id: users.id, email: users.email, role: users.role, createdAt: users.createdAt };
  }

  private get credentialColumns() {
    const { credentials } = this.t;
    return {
      serverName: credentials.serverName,
      credentialId: credentials.credentialId,
      tenantId: credentials.tenantId,
      type: credentials.type,
      createdAt: credentials.createdAt,
      updatedAt: credentials.updatedAt,
    };
  }

  /** An audit event's fields, without its chain link. */
  private get auditColumns() {
    const { chain: _chain, ...columns } = getTableColumns(this.t.auditEvents);
    return columns;
  }

  private chainKey: Uint8Array | undefined;

  /**
   * Inserts audit events, linking them into the chain when the key is set. The first statement
   * claims the head row (in Postgres the upsert locks it; SQLite's BEGIN IMMEDIATE already serialises
   * writers), so writers in any number of processes extend the chain one at a time and it never forks.
   */
  private async insertAudit(events: (AuditRecord & { time: number })[]): Promise<AuditEvent[]> {
    const rows = events.map((event) => ({
      time: event.time,
      action: event.action,
      decision: event.decision,
      actor: event.actor ?? null,
      tenantId: event.tenantId ?? null,
      detail: event.detail ?? {},
    }));
    // Only ids come back, in no promised order; both engines number a multi-row insert's rows in the order given.
    // The rows are what was written (detail is stored as its JSON text, so it reads back the same).
    const withIds = (inserted: { id: number }[]) =>
      inserted
        .map(({ id }) => id)
        .sort((a, b) => a - b)
        .map((id, index) => ({ id, ...rows[index]! }));
    const key = this.chainKey;
    const { auditEvents, auditHead } = this.t;
    if (!key) return withIds(await this.db.insert(auditEvents).values(rows).returning({ id: auditEvents.id }));
    return this.dialect.transaction(async (tx) => {
      const [head] = await tx
        .insert(auditHead)
        .values({ id: 1, lastId: 0, lastChain: CHAIN_START })
        .onConflictDoUpdate({ target: auditHead.id, set: { lastId: sql`${auditHead.lastId}` } })
        .returning();
      const inserted = withIds(await tx.insert(auditEvents).values(rows).returning({ id: auditEvents.id }));
      let previous = head!.lastChain;
      const links = inserted.map((event) => sql`when ${event.id} then ${(previous = chainLink(key, previous, event))}`);
      await tx
        .update(auditEvents)
        .set({ chain: sql`case ${auditEvents.id} ${sql.join(links, sql` `)} end` })
        .where(inArray(auditEvents.id, inserted.map((event) => event.id)));
      await tx.update(auditHead).set({ lastId: inserted.at(-1)!.id, lastChain: previous }).where(eq(auditHead.id, 1));
      return inserted;
    });
  }

  private get tokenColumns() {
    const { profileTokens } = this.t;
    return {
      id: profileTokens.id,
      profileId: profileTokens.profileId,
      prefix: profileTokens.prefix,
      label: profileTokens.label,
      createdAt: profileTokens.createdAt,
      lastUsedAt: profileTokens.lastUsedAt,
    };
  }

  private get apiTokenColumns() {
    const { apiTokens } = this.t;
    return {
      id: apiTokens.id,
      userId: apiTokens.userId,
      prefix: apiTokens.prefix,
      label: apiTokens.label,
      scopes: apiTokens.scopes,
      createdAt: apiTokens.createdAt,
      expiresAt: apiTokens.expiresAt,
      lastUsedAt: apiTokens.lastUsedAt,
    };
  }

  private credentialWhere(key: CredentialKey): SQL {
    const { credentials } = this.t;
    return and(eq(credentials.serverName, key.serverName), eq(credentials.credentialId, key.credentialId), eq(credentials.tenantId, key.tenantId))!;
  }

  users = {
    create: async (input: { email: string; role: User["role"]; passwordHash?: string | null }): Promise<User> => {
      const user: User = { id: crypto.randomUUID(), email: input.email.trim().toLowerCase(), role: input.role, createdAt: Date.now() };
      await this.constrained(() => this.change((tx) => tx.insert(this.t.users).values({ ...user, passwordHash: input.passwordHash ?? null })), {
        unique: () => new ConflictError(`a user with email ${user.email} already exists`),
      });
      return user;
    },
    list: async (): Promise<User[]> => this.db.select(this.userColumns).from(this.t.users).orderBy(asc(this.t.users.createdAt)),
    byEmail: async (email: string): Promise<User | undefined> =>
      this.db.select(this.userColumns).from(this.t.users).where(eq(this.t.users.email, email.trim().toLowerCase())).then(first),
    firstAdmin: async (): Promise<User | undefined> =>
      this.db
        .select(this.userColumns)
        .from(this.t.users)
        .where(eq(this.t.users.role, "admin"))
        .orderBy(asc(this.t.users.createdAt), asc(this.t.users.id))
        .limit(1)
        .then(first),
    byId: async (id: string): Promise<User | undefined> => this.db.select(this.userColumns).from(this.t.users).where(eq(this.t.users.id, id)).then(first),
    withPasswordHash: async (email: string) => {
      const row = await this.db
        .select({ ...this.userColumns, passwordHash: this.t.users.passwordHash })
        .from(this.t.users)
        .where(eq(this.t.users.email, email.trim().toLowerCase()))
        .then(first);
      if (!row) return undefined;
      const { passwordHash, ...user } = row;
      return { user, passwordHash };
    },
    // Passwords are not gateway configuration: no revision bump.
    setPasswordHash: async (userId: string, passwordHash: string | null): Promise<void> => {
      const updated = await this.db.update(this.t.users).set({ passwordHash }).where(eq(this.t.users.id, userId)).returning({ id: this.t.users.id });
      if (updated.length === 0) throw new NotFoundError("no such user (see `gigmcp user list`)");
    },
    setRole: async (userId: string, role: Role): Promise<void> => {
      const updated = await this.change((tx) => tx.update(this.t.users).set({ role }).where(eq(this.t.users.id, userId)).returning({ id: this.t.users.id }));
      if (updated.length === 0) throw new NotFoundError("no such user (see `gigmcp user list`)");
    },
  };

  // Sessions are runtime state of the web console, not configuration: no revision bump.
  sessions = {
    create: async (session: SessionRecord): Promise<void> => {
      await this.db.insert(this.t.sessions).values(session);
    },
    byIdHash: async (idHash: string) =>
      this.db
        .select({ session: this.t.sessions, user: this.userColumns })
        .from(this.t.sessions)
        .innerJoin(this.t.users, eq(this.t.users.id, this.t.sessions.userId))
        .where(eq(this.t.sessions.idHash, idHash))
        .then(first),
    touch: async (idHash: string, lastSeenAt: number, idleExpiresAt: number): Promise<void> => {
      await this.db.update(this.t.sessions).set({ lastSeenAt, idleExpiresAt }).where(eq(this.t.sessions.idHash, idHash));
    },
    remove: async (idHash: string): Promise<number> => this.deleteSessions(eq(this.t.sessions.idHash, idHash)),
    removeForUser: async (userId: string): Promise<number> => this.deleteSessions(eq(this.t.sessions.userId, userId)),
    removeExpired: async (now: number): Promise<number> =>
      this.deleteSessions(or(lte(this.t.sessions.idleExpiresAt, now), lte(this.t.sessions.absoluteExpiresAt, now))!),
  };

  // API tokens are checked on every request, not cached by running gateways: no revision bump.
  apiTokens = {
    create: async (token: ApiToken & { tokenHash: string }): Promise<void> => {
      await this.constrained(() => this.db.insert(this.t.apiTokens).values(token), {
        foreignKey: () => new NotFoundError("no such user (see `gigmcp user list`)"),
      });
    },
    byHash: async (tokenHash: string) =>
      this.db
        .select({ token: this.apiTokenColumns, user: this.userColumns })
        .from(this.t.apiTokens)
        .innerJoin(this.t.users, eq(this.t.users.id, this.t.apiTokens.userId))
        .where(eq(this.t.apiTokens.tokenHash, tokenHash))
        .then(first),
    list: async (userId: string): Promise<ApiToken[]> =>
      this.db.select(this.apiTokenColumns).from(this.t.apiTokens).where(eq(this.t.apiTokens.userId, userId)).orderBy(asc(this.t.apiTokens.createdAt)),
    revoke: async (userId: string, idOrPrefix: string): Promise<ApiToken[]> =>
      this.db
        .delete(this.t.apiTokens)
        .where(and(eq(this.t.apiTokens.userId, userId), or(eq(this.t.apiTokens.id, idOrPrefix), eq(this.t.apiTokens.prefix, idOrPrefix))))
        .returning(this.apiTokenColumns),
    markUsed: async (id: string, at: number): Promise<void> => {
      await this.db.update(this.t.apiTokens).set({ lastUsedAt: at }).where(eq(this.t.apiTokens.id, id));
    },
  };

  profiles = {
    create: async (tenantId: string, name: string, options: { prefixTools: boolean }): Promise<Profile> => {
      checkName("profile", name);
      const profile: Profile = { id: crypto.randomUUID(), tenantId, name, prefixTools: options.prefixTools, createdAt: Date.now() };
      await this.constrained(() => this.change((tx) => tx.insert(this.t.profiles).values(profile)), {
        unique: () => new ConflictError(`profile ${name} already exists`),
      });
      return profile;
    },
    list: async (tenantId?: string): Promise<Profile[]> =>
      this.db
        .select()
        .from(this.t.profiles)
        .where(tenantId === undefined ? undefined : eq(this.t.profiles.tenantId, tenantId))
        .orderBy(asc(this.t.profiles.name)),
    get: async (tenantId: string, name: string): Promise<Profile> => this.profileByName(tenantId, name),
    delete: async (tenantId: string, name: string): Promise<void> => {
      const profile = await this.profileByName(tenantId, name);
      await this.change((tx) => tx.delete(this.t.profiles).where(eq(this.t.profiles.id, profile.id)));
    },
    addServer: async (profileId: string, serverName: string, tools: string[] | null): Promise<void> => {
      const server = await this.serverByName(serverName);
      await this.change((tx) =>
        tx
          .insert(this.t.profileServers)
          .values({ profileId, serverId: server.id, tools })
          .onConflictDoUpdate({ target: [this.t.profileServers.profileId, this.t.profileServers.serverId], set: { tools } }),
      );
    },
    removeServer: async (profileId: string, serverName: string): Promise<void> => {
      const server = await this.serverByName(serverName);
      const removed = await this.change((tx) =>
        tx
          .delete(this.t.profileServers)
          .where(and(eq(this.t.profileServers.profileId, profileId), eq(this.t.profileServers.serverId, server.id)))
          .returning({ serverId: this.t.profileServers.serverId }),
      );
      if (removed.length === 0) throw new NotFoundError(`server ${serverName} is not in this profile`);
    },
    members: async (profileId: string) =>
      this.db
        .select({ server: this.t.servers, tools: this.t.profileServers.tools })
        .from(this.t.profileServers)
        .innerJoin(this.t.servers, eq(this.t.servers.id, this.t.profileServers.serverId))
        .where(eq(this.t.profileServers.profileId, profileId))
        .orderBy(asc(this.t.servers.name)),
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
      await this.change((tx) => tx.insert(this.t.profileTokens).values({ ...record, tokenHash: hashToken(token) }));
      return { token, record };
    },
    // Lookup is by SHA-256 of the presented token: an attacker cannot steer the
    // hash, so the index comparison leaks nothing useful about stored tokens.
    resolve: async (token: string) => {
      if (!token.startsWith(TOKEN_PREFIX) || token.length > 128) return undefined;
      const tokenHash = hashToken(token);
      const row = await this.db
        .select({ tokenId: this.t.profileTokens.id, profile: this.t.profiles })
        .from(this.t.profileTokens)
        .innerJoin(this.t.profiles, eq(this.t.profiles.id, this.t.profileTokens.profileId))
        .where(eq(this.t.profileTokens.tokenHash, tokenHash))
        .then(first);
      return row && { ...row, tokenHash };
    },
    list: async (profileId: string): Promise<ProfileToken[]> =>
      this.db
        .select(this.tokenColumns)
        .from(this.t.profileTokens)
        .where(eq(this.t.profileTokens.profileId, profileId))
        .orderBy(asc(this.t.profileTokens.createdAt)),
    exists: async (tokenId: string): Promise<boolean> =>
      (await this.db.select({ id: this.t.profileTokens.id }).from(this.t.profileTokens).where(eq(this.t.profileTokens.id, tokenId))).length > 0,
    revoke: async (profileId: string, idOrPrefix: string): Promise<number> =>
      this.deleteTokens(
        and(
          eq(this.t.profileTokens.profileId, profileId),
          idOrPrefix.startsWith(TOKEN_PREFIX)
            ? eq(this.t.profileTokens.prefix, idOrPrefix.slice(0, TOKEN_DISPLAY_LENGTH))
            : eq(this.t.profileTokens.id, idOrPrefix),
        )!,
      ),
    revokeByLabel: async (profileId: string, label: string): Promise<number> =>
      this.deleteTokens(and(eq(this.t.profileTokens.profileId, profileId), eq(this.t.profileTokens.label, label))!),
    markUsed: async (tokenId: string, at: number): Promise<void> => {
      await this.db.update(this.t.profileTokens).set({ lastUsedAt: at }).where(eq(this.t.profileTokens.id, tokenId));
    },
  };

  servers = {
    create: async (spec: ServerSpec): Promise<Server> => {
      checkName("server", spec.name);
      checkCredentialSpecs(spec);
      const now = Date.now();
      const server: Server = { ...spec, id: crypto.randomUUID(), createdAt: now, updatedAt: now };
      await this.constrained(() => this.change((tx) => tx.insert(this.t.servers).values(server)), {
        unique: () => new ConflictError(`server ${spec.name} already exists (remove it first)`),
      });
      return server;
    },
    upsert: async (spec: ServerSpec): Promise<Server> => {
      checkName("server", spec.name);
      checkCredentialSpecs(spec);
      const now = Date.now();
      await this.change((tx) =>
        tx
          .insert(this.t.servers)
          .values({ ...spec, id: crypto.randomUUID(), createdAt: now, updatedAt: now })
          .onConflictDoUpdate({ target: this.t.servers.name, set: { ...spec, updatedAt: now } }),
      );
      return this.serverByName(spec.name);
    },
    list: async (): Promise<Server[]> => this.db.select().from(this.t.servers).orderBy(asc(this.t.servers.name)),
    get: async (name: string): Promise<Server> => this.serverByName(name),
    remove: async (name: string): Promise<void> => {
      const server = await this.serverByName(name);
      await this.change((tx) => tx.delete(this.t.servers).where(eq(this.t.servers.id, server.id)));
    },
  };

  credentials = {
    set: async (input: CredentialKey & { type: CredentialType; sealed: SealedSecret }) => {
      checkName("server", input.serverName);
      checkCredentialId(input.credentialId);
      const now = Date.now();
      const { credentials } = this.t;
      return this.constrained(
        () =>
          this.change(async (tx) => {
            const existing = await tx.select({ createdAt: credentials.createdAt }).from(credentials).where(this.credentialWhere(input)).then(first);
            await tx
              .insert(credentials)
              .values({ ...input, createdAt: now, updatedAt: now })
              .onConflictDoUpdate({
                target: [credentials.serverName, credentials.credentialId, credentials.tenantId],
                set: { type: input.type, sealed: input.sealed, updatedAt: now },
              });
            const record: CredentialMetadata = {
              serverName: input.serverName,
              credentialId: input.credentialId,
              tenantId: input.tenantId,
              type: input.type,
              createdAt: existing?.createdAt ?? now,
              updatedAt: now,
            };
            return { record, replaced: existing !== undefined };
          }),
        { foreignKey: () => new NotFoundError("no such user: the credential's tenant does not exist (see `gigmcp user list`)") },
      );
    },
    get: async (serverName: string, credentialId: string, tenantId: string): Promise<CredentialRecord | undefined> =>
      this.db.select().from(this.t.credentials).where(this.credentialWhere({ serverName, credentialId, tenantId })).then(first),
    list: async (tenantId?: string): Promise<CredentialMetadata[]> =>
      this.db
        .select(this.credentialColumns)
        .from(this.t.credentials)
        .where(tenantId === undefined ? undefined : eq(this.t.credentials.tenantId, tenantId))
        .orderBy(asc(this.t.credentials.serverName), asc(this.t.credentials.credentialId), asc(this.t.credentials.tenantId)),
    remove: async (serverName: string, credentialId: string, tenantId: string): Promise<void> => {
      const removed = await this.change((tx) =>
        tx
          .delete(this.t.credentials)
          .where(this.credentialWhere({ serverName, credentialId, tenantId }))
          .returning({ id: this.t.credentials.credentialId }),
      );
      if (removed.length === 0) throw new NotFoundError(`no credential ${serverName}/${credentialId} is set for this tenant (see \`gigmcp credential list\`)`);
    },
    all: async (): Promise<CredentialRecord[]> => this.db.select().from(this.t.credentials),
    // Compare-and-swap on the whole sealed value: every wrap has a fresh nonce, so equal text means the same wrap.
    rewrap: async (key: CredentialKey, expected: SealedSecret, replacement: SealedSecret): Promise<boolean> =>
      (
        await this.db
          .update(this.t.credentials)
          .set({ sealed: replacement })
          .where(and(this.credentialWhere(key), eq(this.t.credentials.sealed, expected)))
          .returning({ id: this.t.credentials.credentialId })
      ).length === 1,
  };

  // Placeholders are runtime state created by the gateway, not configuration: no revision bump.
  placeholders = {
    getOrCreate: async (serverName: string, credentialId: string, tenantId: string): Promise<string> => {
      const { placeholders } = this.t;
      const key = { serverName, credentialId, tenantId };
      await this.db
        .insert(placeholders)
        .values({ ...key, placeholder: newPlaceholder(), createdAt: Date.now() })
        .onConflictDoNothing({ target: [placeholders.serverName, placeholders.credentialId, placeholders.tenantId] });
      const row = await this.db
        .select({ placeholder: placeholders.placeholder })
        .from(placeholders)
        .where(and(eq(placeholders.serverName, serverName), eq(placeholders.credentialId, credentialId), eq(placeholders.tenantId, tenantId)))
        .then(first);
      return row!.placeholder;
    },
    resolve: async (placeholder: string): Promise<CredentialKey | undefined> =>
      this.db
        .select({ serverName: this.t.placeholders.serverName, credentialId: this.t.placeholders.credentialId, tenantId: this.t.placeholders.tenantId })
        .from(this.t.placeholders)
        .where(eq(this.t.placeholders.placeholder, placeholder))
        .then(first),
  };

  // Gateway-owned secrets, written by the gateway itself: not configuration, no revision bump.
  sealedBlobs = {
    get: async (name: string): Promise<SealedBlob | undefined> =>
      this.db.select().from(this.t.sealedBlobs).where(eq(this.t.sealedBlobs.name, name)).then(first),
    put: async (name: string, sealed: SealedSecret): Promise<void> => {
      const now = Date.now();
      await this.db
        .insert(this.t.sealedBlobs)
        .values({ name, sealed, createdAt: now, updatedAt: now })
        .onConflictDoUpdate({ target: this.t.sealedBlobs.name, set: { sealed, updatedAt: now } });
    },
    add: async (name: string, sealed: SealedSecret): Promise<boolean> => {
      const now = Date.now();
      const created = await this.db
        .insert(this.t.sealedBlobs)
        .values({ name, sealed, createdAt: now, updatedAt: now })
        .onConflictDoNothing({ target: this.t.sealedBlobs.name })
        .returning({ name: this.t.sealedBlobs.name });
      return created.length === 1;
    },
    all: async (): Promise<SealedBlob[]> => this.db.select().from(this.t.sealedBlobs),
    rewrap: async (name: string, expected: SealedSecret, replacement: SealedSecret): Promise<boolean> =>
      (
        await this.db
          .update(this.t.sealedBlobs)
          .set({ sealed: replacement })
          .where(and(eq(this.t.sealedBlobs.name, name), eq(this.t.sealedBlobs.sealed, expected)))
          .returning({ name: this.t.sealedBlobs.name })
      ).length === 1,
  };

  oauthApps = {
    set: async (app: Omit<OAuthAppRecord, "createdAt" | "updatedAt">): Promise<OAuthAppRecord> => {
      const now = Date.now();
      const { vendor: _vendor, ...fields } = app;
      const [row] = await this.change((tx) =>
        tx
          .insert(this.t.oauthApps)
          .values({ ...app, createdAt: now, updatedAt: now })
          .onConflictDoUpdate({ target: this.t.oauthApps.vendor, set: { ...fields, updatedAt: now } })
          .returning(),
      );
      return row!;
    },
    get: async (vendor: string): Promise<OAuthAppRecord | undefined> =>
      this.db.select().from(this.t.oauthApps).where(eq(this.t.oauthApps.vendor, vendor)).then(first),
    list: async (): Promise<OAuthAppRecord[]> => this.db.select().from(this.t.oauthApps).orderBy(asc(this.t.oauthApps.vendor)),
    remove: async (vendor: string): Promise<void> => {
      const removed = await this.change((tx) => tx.delete(this.t.oauthApps).where(eq(this.t.oauthApps.vendor, vendor)).returning({ vendor: this.t.oauthApps.vendor }));
      if (removed.length === 0) throw new NotFoundError(`no OAuth app is registered for ${vendor} (see \`gigmcp oauth-app list\`)`);
    },
    rewrap: async (vendor: string, expected: SealedSecret, replacement: SealedSecret): Promise<boolean> =>
      (
        await this.db
          .update(this.t.oauthApps)
          .set({ clientSecret: replacement })
          .where(and(eq(this.t.oauthApps.vendor, vendor), eq(this.t.oauthApps.clientSecret, expected)))
          .returning({ vendor: this.t.oauthApps.vendor })
      ).length === 1,
  };

  // Tokens rotate with every refresh: runtime state, no revision bump.
  oauthConnections = {
    set: async (record: Omit<OAuthConnectionRecord, "createdAt" | "updatedAt" | "version" | "refreshingUntil">): Promise<number> => {
      const now = Date.now();
      const { vendor: _vendor, tenantId: _tenantId, ...fields } = record;
      const { version } = this.t.oauthConnections;
      const [row] = await this.constrained(
        () =>
          this.db
            .insert(this.t.oauthConnections)
            .values({ ...record, createdAt: now, updatedAt: now })
            .onConflictDoUpdate({
              target: [this.t.oauthConnections.vendor, this.t.oauthConnections.tenantId],
              set: { ...fields, version: sql`${version} + 1`, refreshingUntil: null, updatedAt: now },
            })
            .returning({ version }),
        { foreignKey: () => new NotFoundError("no such user (see `gigmcp user list`)") },
      );
      return row!.version;
    },
    get: async (vendor: string, tenantId: string): Promise<OAuthConnectionRecord | undefined> =>
      this.db.select().from(this.t.oauthConnections).where(this.connectionWhere(vendor, tenantId)).then(first),
    list: async (tenantId?: string): Promise<OAuthConnection[]> => {
      const { sealed: _sealed, version: _version, refreshingUntil: _refreshingUntil, ...columns } = getTableColumns(this.t.oauthConnections);
      return this.db
        .select(columns)
        .from(this.t.oauthConnections)
        .where(tenantId === undefined ? undefined : eq(this.t.oauthConnections.tenantId, tenantId))
        .orderBy(asc(this.t.oauthConnections.vendor), asc(this.t.oauthConnections.tenantId));
    },
    claimRefresh: async (vendor: string, tenantId: string, version: number, until: number): Promise<boolean> => {
      const { oauthConnections: table } = this.t;
      const free = or(isNull(table.refreshingUntil), lt(table.refreshingUntil, Date.now()));
      return (
        await this.db
          .update(table)
          .set({ refreshingUntil: until })
          .where(and(this.connectionWhere(vendor, tenantId), eq(table.version, version), eq(table.status, "connected"), free))
          .returning({ vendor: table.vendor })
      ).length === 1;
    },
    finishRefresh: async (vendor: string, tenantId: string, version: number, tokens: RefreshedTokens): Promise<boolean> => {
      const { oauthConnections: table } = this.t;
      return (
        await this.db
          .update(table)
          .set({ ...tokens, status: "connected", problem: null, version: version + 1, refreshingUntil: null, updatedAt: Date.now() })
          .where(and(this.connectionWhere(vendor, tenantId), eq(table.version, version)))
          .returning({ vendor: table.vendor })
      ).length === 1;
    },
    releaseRefresh: async (vendor: string, tenantId: string, version: number): Promise<void> => {
      await this.db
        .update(this.t.oauthConnections)
        .set({ refreshingUntil: null })
        .where(and(this.connectionWhere(vendor, tenantId), eq(this.t.oauthConnections.version, version)));
    },
    markNeedsReconnect: async (vendor: string, tenantId: string, problem: string, version?: number): Promise<void> => {
      await this.db
        .update(this.t.oauthConnections)
        .set({ status: "needs_reconnect", problem, refreshingUntil: null, updatedAt: Date.now() })
        .where(and(this.connectionWhere(vendor, tenantId), version === undefined ? undefined : eq(this.t.oauthConnections.version, version)));
    },
    remove: async (vendor: string, tenantId: string): Promise<boolean> =>
      (await this.db.delete(this.t.oauthConnections).where(this.connectionWhere(vendor, tenantId)).returning({ vendor: this.t.oauthConnections.vendor })).length > 0,
    all: async (): Promise<OAuthConnectionRecord[]> => this.db.select().from(this.t.oauthConnections),
    rewrap: async (vendor: string, tenantId: string, expected: SealedSecret, replacement: SealedSecret): Promise<boolean> =>
      (
        await this.db
          .update(this.t.oauthConnections)
          .set({ sealed: replacement })
          .where(and(this.connectionWhere(vendor, tenantId), eq(this.t.oauthConnections.sealed, expected)))
          .returning({ vendor: this.t.oauthConnections.vendor })
      ).length === 1,
  };

  private connectionWhere(vendor: string, tenantId: string): SQL {
    return and(eq(this.t.oauthConnections.vendor, vendor), eq(this.t.oauthConnections.tenantId, tenantId))!;
  }

  oauthFlows = {
    create: async (flow: OAuthFlowRecord): Promise<void> => {
      await this.constrained(() => this.db.insert(this.t.oauthFlows).values(flow), {
        foreignKey: () => new NotFoundError("no such user (see `gigmcp user list`)"),
      });
    },
    // Delete-and-return in one statement: two redirects carrying the same state cannot both get it.
    take: async (stateHash: string): Promise<OAuthFlowRecord | undefined> =>
      this.db.delete(this.t.oauthFlows).where(eq(this.t.oauthFlows.stateHash, stateHash)).returning().then(first),
    removeStale: async (before: number): Promise<number> =>
      (await this.db.delete(this.t.oauthFlows).where(lt(this.t.oauthFlows.createdAt, before)).returning({ stateHash: this.t.oauthFlows.stateHash })).length,
  };

  audit = {
    record: async (event: AuditRecord): Promise<AuditEvent> => (await this.insertAudit([{ ...event, time: Date.now() }]))[0]!,
    append: async (events: (AuditRecord & { time: number })[]): Promise<void> => {
      if (events.length > 0) await this.insertAudit(events);
    },
    useChainKey: async (key: Uint8Array): Promise<void> => {
      this.chainKey = Uint8Array.from(key);
    },
    verify: async (): Promise<AuditVerification> => {
      if (!this.chainKey) throw new Error("the audit key is not loaded: the store verifies only after useChainKey");
      const { auditEvents, auditHead } = this.t;
      const walk = new ChainWalk(this.chainKey);
      let after = 0;
      for (;;) {
        const page = await this.db
          .select({ ...this.auditColumns, chain: auditEvents.chain })
          .from(auditEvents)
          .where(gt(auditEvents.id, after))
          .orderBy(asc(auditEvents.id))
          .limit(VERIFY_PAGE);
        for (const event of page) if (!walk.add(event)) return walk.finish(undefined);
        if (page.length > 0) after = page.at(-1)!.id;
        if (page.length === VERIFY_PAGE) continue;
        const head = await this.db.select().from(auditHead).where(eq(auditHead.id, 1)).then(first);
        // Events recorded while this walked move the head past it: walk on to them.
        if (page.length > 0 && head && head.lastId > (walk.head?.id ?? 0)) continue;
        return walk.finish(head);
      }
    },
    list: async (filter: AuditFilter = {}): Promise<AuditEvent[]> => {
      const events = this.t.auditEvents;
      return this.db
        .select(this.auditColumns)
        .from(events)
        .where(
          and(
            filter.tenantId === undefined ? undefined : eq(events.tenantId, filter.tenantId),
            filter.afterId === undefined ? undefined : gt(events.id, filter.afterId),
            filter.beforeId === undefined ? undefined : lt(events.id, filter.beforeId),
            filter.since === undefined ? undefined : gte(events.time, filter.since),
            filter.action === undefined ? undefined : eq(events.action, filter.action),
            filter.decision === undefined ? undefined : eq(events.decision, filter.decision),
            filter.actor === undefined ? undefined : eq(events.actor, filter.actor),
          ),
        )
        .orderBy(filter.afterId === undefined ? desc(events.id) : asc(events.id))
        .limit(Math.min(filter.limit ?? 100, 1000));
    },
    summary: async ({ tenantId, since, bucketMs, count }: AuditSummaryFilter): Promise<AuditBucket[]> => {
      const events = this.t.auditEvents;
      // Integer arithmetic, CASE and grouping by the output alias: the same query runs on any SQL database.
      const rows = await this.db
        .select({
          bucket: sql<number>`(${events.time} - ${since}) / ${bucketMs}`.as("bucket"),
          calls: sql<number>`sum(case when ${events.action} = 'tool.call' then 1 else 0 end)`,
          denies: sql<number>`sum(case when ${events.decision} = 'deny' then 1 else 0 end)`,
        })
        .from(events)
        .where(and(tenantId === undefined ? undefined : eq(events.tenantId, tenantId), gte(events.time, since), lt(events.time, since + bucketMs * count)))
        .groupBy(sql`bucket`);
      const counted = new Map(rows.map((row) => [Number(row.bucket), row]));
      return Array.from({ length: count }, (_, index) => ({
        start: since + index * bucketMs,
        calls: Number(counted.get(index)?.calls ?? 0),
        denies: Number(counted.get(index)?.denies ?? 0),
      }));
    },
  };

  private async profileByName(tenantId: string, name: string): Promise<Profile> {
    const profile = await this.db
      .select()
      .from(this.t.profiles)
      .where(and(eq(this.t.profiles.tenantId, tenantId), eq(this.t.profiles.name, name)))
      .then(first);
    if (!profile) throw new NotFoundError(`no profile named ${name} (see \`gigmcp profile list\`)`);
    return profile;
  }

  private async serverByName(name: string): Promise<Server> {
    const server = await this.db.select().from(this.t.servers).where(eq(this.t.servers.name, name)).then(first);
    if (!server) throw new NotFoundError(`no server named ${name} (see \`gigmcp server list\`)`);
    return server;
  }

  private async deleteSessions(where: SQL): Promise<number> {
    return (await this.db.delete(this.t.sessions).where(where).returning({ idHash: this.t.sessions.idHash })).length;
  }

  private async deleteTokens(where: SQL): Promise<number> {
    return (await this.change((tx) => tx.delete(this.t.profileTokens).where(where).returning({ id: this.t.profileTokens.id }))).length;
  }
}
