/**
 * Who is calling the management API: password logins that open browser
 * sessions (with a CSRF token each), and API tokens for scripts. Session ids,
 * CSRF tokens and API tokens are shown once; only their SHA-256 is stored.
 */
import { timingSafeEqual } from "node:crypto";
import * as v from "valibot";
import type { Logger } from "../log/index.ts";
import { API_SCOPES, hashToken, NotFoundError, type ApiScope, type ApiToken, type SessionRecord, type Store, type User } from "../store/index.ts";
import { hashPassword, passwordProblem, verifyAgainstDummy, verifyPassword } from "./passwords.ts";
import { LoginThrottle } from "./throttle.ts";

export type AuthErrorCode = "invalid_credentials" | "throttled" | "weak_password" | "invalid_request" | "not_found";

/** A refused authentication or request; `message` is safe to show to the caller. */
export class AuthError extends Error {
  override name = "AuthError";
  constructor(
    readonly code: AuthErrorCode,
    message: string,
    /** Set for `throttled`: when to try again. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export interface SessionPolicy {
  /** A session unused this long ends. */
  idleMs: number;
  /** A session ends this long after login, however much it is used. */
  absoluteMs: number;
}

export const DEFAULT_SESSION_POLICY: SessionPolicy = { idleMs: 12 * 3_600_000, absoluteMs: 7 * 86_400_000 };

/** Use is recorded at most this often, so busy sessions do not write on every request. */
const TOUCH_INTERVAL_MS = 60_000;
const API_TOKEN_PREFIX = "gigapi_";
/** `gigapi_` and 8 characters of the random part: enough to recognise a token in a list. */
const API_TOKEN_DISPLAY_LENGTH = API_TOKEN_PREFIX.length + 8;
/** 32 random bytes in base64url, with room to spare; longer input is not even hashed. */
const MAX_SECRET_LENGTH = 128;

/** A session as the login returns it: the only time its id and CSRF token exist outside the client. */
export interface NewSession {
  /** Opaque, 32 random bytes base64url: put it in an HttpOnly cookie. */
  id: string;
  /** Send it to the client (e.g. a readable cookie); state-changing requests must echo it in a header. */
  csrfToken: string;
  /** The absolute expiry (ms since the epoch), for the cookie's lifetime; idle expiry may end it sooner. */
  expiresAt: number;
}

/** A valid session found by its id. Holds hashes only. */
export interface ActiveSession {
  /** SHA-256 of the id: names the session (e.g. in logs) without being usable as one. */
  key: string;
  userId: string;
  csrfHash: string;
  createdAt: number;
  lastSeenAt: number;
  /** When the session ends unless used again (never after the absolute expiry). */
  expiresAt: number;
}

export interface NewApiToken {
  /** The token itself, shown once. */
  token: string;
  record: ApiToken;
}

const ApiTokenRequest = v.object({
  label: v.pipe(v.string(), v.trim(), v.minLength(1, "give the token a label"), v.maxLength(100, "the label must be at most 100 characters")),
  scopes: v.pipe(
    v.array(v.picklist(API_SCOPES, `scopes must be among ${API_SCOPES.join(", ")}`)),
    v.minLength(1, "give the token at least one scope"),
  ),
  expiresInDays: v.optional(
    v.pipe(v.number(), v.integer("expiresInDays must be a whole number"), v.minValue(1, "expiresInDays must be 1 to 365"), v.maxValue(365, "expiresInDays must be 1 to 365")),
    90,
  ),
});
export type ApiTokenRequest = v.InferInput<typeof ApiTokenRequest>;

export interface Auth {
  /** Opens a session for a user whose identity another authority (OIDC) has just proven. */
  startSession(user: User, ip: string): Promise<NewSession>;
  /** Opens a new session (a fresh id on every login); throws AuthError `invalid_credentials` or `throttled`. */
  login(email: string, password: string, ip: string): Promise<{ user: User; session: NewSession }>;
  /** The session's user, or undefined for an unknown, ended or expired session. */
  authenticateSession(sessionId: string): Promise<{ user: User; session: ActiveSession } | undefined>;
  /** Whether a request carries the session's CSRF token. */
  checkCsrf(session: ActiveSession, headerValue: string | null | undefined): boolean;
  logout(sessionId: string): Promise<void>;
  /** Ends every session of the user; returns how many. */
  logoutEverywhere(userId: string): Promise<number>;
  /** Applies the password policy (AuthError `weak_password`), stores the new hash and ends the user's sessions. */
  setPassword(userId: string, password: string): Promise<void>;
  /** Mints a token for scripts (AuthError `invalid_request` for bad input, `not_found` for an unknown user). */
  createApiToken(userId: string, request: ApiTokenRequest): Promise<NewApiToken>;
  /** The token's user and scopes, or undefined for an unknown, revoked or expired token. */
  authenticateApiToken(token: string): Promise<{ user: User; scopes: ApiScope[]; tokenId: string } | undefined>;
  listApiTokens(userId: string): Promise<ApiToken[]>;
  /** Revokes by id or displayed prefix; returns how many were revoked (0 when none matched). */
  revokeApiToken(userId: string, idOrPrefix: string): Promise<number>;
}

export interface AuthOptions {
  store: Store;
  log: Logger;
  /** The clock, in ms since the epoch (tests move it). */
  now?: () => number;
  sessionPolicy?: SessionPolicy;
  throttle?: LoginThrottle;
}

function randomSecret(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}

/** Constant-time equality of two hex SHA-256 digests. */
function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, "hex");
  const right = Buffer.from(b, "hex");
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}

/** Keeps audit rows readable when someone types junk (or a password) into the email field. */
function auditableEmail(email: string): string {
  return email.trim().toLowerCase().slice(0, 254);
}

export function createAuth(options: AuthOptions): Auth {
  const { store, log } = options;
  const now = options.now ?? Date.now;
  const policy = options.sessionPolicy ?? DEFAULT_SESSION_POLICY;
  const throttle = options.throttle ?? new LoginThrottle();

  const activeSession = (record: SessionRecord): ActiveSession => ({
    key: record.idHash,
    userId: record.userId,
    csrfHash: record.csrfHash,
    createdAt: record.createdAt,
    lastSeenAt: record.lastSeenAt,
    expiresAt: Math.min(record.idleExpiresAt, record.absoluteExpiresAt),
  });

  const denyLogin = async (email: string, ip: string, reason: AuthErrorCode, tenantId: string | null) => {
    await store.audit.record({ action: "auth.login", decision: "deny", actor: auditableEmail(email), tenantId, detail: { reason, ip } });
  };

  /** A fresh session (a new id at every login: rotation) for a user whose identity was just proven. */
  const startSession = async (user: User, ip: string, method: "password" | "oidc"): Promise<NewSession> => {
    const at = now();
    await store.sessions.removeExpired(at);
    const session: NewSession = { id: randomSecret(), csrfToken: randomSecret(), expiresAt: at + policy.absoluteMs };
    await store.sessions.create({
      idHash: hashToken(session.id),
      userId: user.id,
      csrfHash: hashToken(session.csrfToken),
      createdAt: at,
      lastSeenAt: at,
      idleExpiresAt: Math.min(at + policy.idleMs, session.expiresAt),
      absoluteExpiresAt: session.expiresAt,
    });
    await store.audit.record({ action: "auth.login", decision: "allow", actor: user.email, tenantId: user.id, detail: { reason: method, ip } });
    return session;
  };

  return {
    startSession: (user, ip) => startSession(user, ip, "oidc"),

    async login(email, password, ip) {
      const at = now();
      const retryAfterSeconds = throttle.retryAfterSeconds(email, ip, at);
      if (retryAfterSeconds > 0) {
        await denyLogin(email, ip, "throttled", null);
        log.warn("login throttled", { ip, retryAfterSeconds });
        throw new AuthError("throttled", `too many failed logins: try again in ${retryAfterSeconds} seconds`, retryAfterSeconds);
      }
      const account = await store.users.withPasswordHash(email);
      // Unknown accounts and accounts without a password verify against a dummy hash: same time, same answer.
      const valid = account?.passwordHash ? await verifyPassword(password, account.passwordHash) : await verifyAgainstDummy(password);
      if (!account || !valid) {
        throttle.recordFailure(email, ip, at);
        await denyLogin(email, ip, "invalid_credentials", account?.user.id ?? null);
        throw new AuthError("invalid_credentials", "wrong email or password");
      }
      throttle.recordSuccess(email);
      return { user: account.user, session: await startSession(account.user, ip, "password") };
    },

    async authenticateSession(sessionId) {
      if (!sessionId || sessionId.length > MAX_SECRET_LENGTH) return undefined;
      const idHash = hashToken(sessionId);
      const found = await store.sessions.byIdHash(idHash);
      if (!found) return undefined;
      const at = now();
      const { session, user } = found;
      if (at >= session.idleExpiresAt || at >= session.absoluteExpiresAt) {
        await store.sessions.remove(idHash);
        return undefined;
      }
      if (at - session.lastSeenAt >= TOUCH_INTERVAL_MS) {
        session.lastSeenAt = at;
        session.idleExpiresAt = Math.min(at + policy.idleMs, session.absoluteExpiresAt);
        await store.sessions.touch(idHash, session.lastSeenAt, session.idleExpiresAt);
      }
      return { user, session: activeSession(session) };
    },

    checkCsrf(session, headerValue) {
      if (!headerValue || headerValue.length > MAX_SECRET_LENGTH) return false;
      return sameHash(hashToken(headerValue), session.csrfHash);
    },

    async logout(sessionId) {
      if (sessionId && sessionId.length <= MAX_SECRET_LENGTH) await store.sessions.remove(hashToken(sessionId));
    },

    async logoutEverywhere(userId) {
      const ended = await store.sessions.removeForUser(userId);
      await store.audit.record({ action: "auth.logout_everywhere", decision: "allow", tenantId: userId, detail: { sessions: ended } });
      return ended;
    },

    async setPassword(userId, password) {
      const user = await store.users.byId(userId);
      if (!user) throw new AuthError("not_found", "no such user");
      const problem = passwordProblem(password, user.email);
      if (problem) throw new AuthError("weak_password", problem);
      await store.users.setPasswordHash(userId, await hashPassword(password));
      // Whoever knew the old password may hold a session: end them all.
      await store.sessions.removeForUser(userId);
      await store.audit.record({ action: "auth.password_set", decision: "allow", actor: user.email, tenantId: userId });
    },

    async createApiToken(userId, request) {
      const parsed = v.safeParse(ApiTokenRequest, request);
      if (!parsed.success) throw new AuthError("invalid_request", parsed.issues[0].message);
      const user = await store.users.byId(userId);
      if (!user) throw new AuthError("not_found", "no such user");
      const at = now();
      const token = API_TOKEN_PREFIX + randomSecret();
      const record: ApiToken = {
        id: crypto.randomUUID(),
        userId,
        prefix: token.slice(0, API_TOKEN_DISPLAY_LENGTH),
        label: parsed.output.label,
        scopes: [...new Set(parsed.output.scopes)],
        createdAt: at,
        expiresAt: at + parsed.output.expiresInDays * 86_400_000,
        lastUsedAt: null,
      };
      try {
        await store.apiTokens.create({ ...record, tokenHash: hashToken(token) });
      } catch (error) {
        if (error instanceof NotFoundError) throw new AuthError("not_found", "no such user");
        throw error;
      }
      await store.audit.record({
        action: "auth.api_token.create",
        decision: "allow",
        actor: user.email,
        tenantId: userId,
        detail: { tokenId: record.id, prefix: record.prefix, label: record.label, scopes: record.scopes, expiresAt: record.expiresAt },
      });
      return { token, record };
    },

    async authenticateApiToken(token) {
      if (!token.startsWith(API_TOKEN_PREFIX) || token.length > MAX_SECRET_LENGTH) return undefined;
      const found = await store.apiTokens.byHash(hashToken(token));
      const at = now();
      if (!found || at >= found.token.expiresAt) return undefined;
      if (found.token.lastUsedAt === null || at - found.token.lastUsedAt >= TOUCH_INTERVAL_MS) await store.apiTokens.markUsed(found.token.id, at);
      return { user: found.user, scopes: found.token.scopes, tokenId: found.token.id };
    },

    listApiTokens: (userId) => store.apiTokens.list(userId),

    async revokeApiToken(userId, idOrPrefix) {
      const which = idOrPrefix.replace(/…$/, "");
      const revoked = await store.apiTokens.revoke(userId, which.startsWith(API_TOKEN_PREFIX) ? which.slice(0, API_TOKEN_DISPLAY_LENGTH) : which);
      for (const token of revoked) {
        await store.audit.record({
          action: "auth.api_token.revoke",
          decision: "allow",
          tenantId: userId,
          detail: { tokenId: token.id, prefix: token.prefix, label: token.label },
        });
      }
      return revoked.length;
    },
  };
}
