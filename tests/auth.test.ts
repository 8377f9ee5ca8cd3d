import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { AuthError, createAuth, hashPassword, LoginThrottle, passwordProblem, verifyPassword, type Auth } from "../src/auth/index.ts";
import { createLogger } from "../src/log/index.ts";
import { openStore, type Store, type User } from "../src/store/index.ts";
import { BUN, ROOT, tempDir } from "./helpers/gateway.ts";

const PASSWORD = "correct horse 42 battery";
const HOUR = 3_600_000;

let dir: string;
let store: Store;
let auth: Auth;
let user: User;
let clock: number;
let logged: string;

beforeEach(async () => {
  dir = tempDir();
  store = await openStore(`sqlite:${join(dir, "db.sqlite")}`);
  clock = Date.UTC(2026, 0, 1);
  logged = "";
  const capture = (line: string) => {
    logged += line;
    return true;
  };
  auth = createAuth({ store, log: createLogger("debug", {}, capture), now: () => clock });
  user = await store.users.create({ email: "Alice@Example.com", role: "admin", passwordHash: await hashPassword(PASSWORD) });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function loginError(email: string, password: string, ip = "192.0.2.1"): Promise<AuthError> {
  const error = await auth.login(email, password, ip).then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

/** Everything in the database file and its write-ahead log, as text. */
function databaseText(): string {
  const client = new Database(join(dir, "db.sqlite"));
  client.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  client.close();
  return readFileSync(join(dir, "db.sqlite")).toString("latin1");
}

describe("passwords", () => {
  test("hashes with argon2id and verifies", async () => {
    const hash = await hashPassword(PASSWORD);
    expect(hash).toStartWith("$argon2id$");
    expect(await verifyPassword(PASSWORD, hash)).toBe(true);
    expect(await verifyPassword("wrong password 42", hash)).toBe(false);
    expect(await verifyPassword(PASSWORD, "not a hash")).toBe(false);
  });

  test("the policy explains what is wrong", () => {
    expect(passwordProblem("Short1!", "a@b.c")).toContain("at least 12 characters");
    expect(passwordProblem("alice@example.com", "Alice@Example.com")).toContain("not be the email");
    expect(passwordProblem("aaaaaaaaaaaaaaaaaaaaaaaa", "a@b.c")).toContain("at least 5 different");
    expect(passwordProblem("onlylowercase", "a@b.c")).toContain("mix kinds of characters");
    expect(passwordProblem("x".repeat(1025), "a@b.c")).toContain("at most 1024");
    expect(passwordProblem("lower and spaces", "a@b.c")).toBeUndefined();
    expect(passwordProblem("a long lowercase passphrase", "a@b.c")).toBeUndefined();
    expect(passwordProblem(PASSWORD, "a@b.c")).toBeUndefined();
  });
});

describe("login", () => {
  test("opens a session; only hashes reach the database and nothing secret is logged", async () => {
    const { user: loggedIn, session } = await auth.login("alice@example.com", PASSWORD, "192.0.2.1");
    expect(loggedIn).toEqual(user);
    expect(session.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(session.csrfToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(session.expiresAt).toBe(clock + 7 * 24 * HOUR);
    expect((await auth.authenticateSession(session.id))?.user).toEqual(user);
    const raw = databaseText();
    for (const secret of [session.id, session.csrfToken, PASSWORD]) {
      expect(raw).not.toContain(secret);
      expect(logged).not.toContain(secret);
    }
  });

  test("a wrong password and an unknown account get the same answer, both audited", async () => {
    const wrong = await loginError("alice@example.com", "wrong password 42");
    const unknown = await loginError("mallory@example.com", PASSWORD);
    expect([wrong.code, wrong.message]).toEqual(["invalid_credentials", "wrong email or password"]);
    expect([unknown.code, unknown.message]).toEqual([wrong.code, wrong.message]);
    await auth.login("alice@example.com", PASSWORD, "192.0.2.1");
    const events = (await store.audit.list()).filter((event) => event.action === "auth.login").reverse();
    expect(events.map((event) => [event.decision, event.actor, event.detail.reason])).toEqual([
      ["deny", "alice@example.com", "invalid_credentials"],
      ["deny", "mallory@example.com", "invalid_credentials"],
      ["allow", "alice@example.com", "password"],
    ]);
    expect(JSON.stringify(events)).not.toContain(PASSWORD);
  });

  test("a user without a password (OIDC only) cannot log in with one", async () => {
    await store.users.create({ email: "oidc@example.com", role: "member" });
    expect((await loginError("oidc@example.com", "")).code).toBe("invalid_credentials");
  });

  test("every login opens a new session; logout ends one, logoutEverywhere all", async () => {
    const first = await auth.login("alice@example.com", PASSWORD, "192.0.2.1");
    const second = await auth.login("ALICE@example.com", PASSWORD, "192.0.2.1");
    const third = await auth.login("alice@example.com", PASSWORD, "192.0.2.1");
    expect(new Set([first.session.id, second.session.id, third.session.id]).size).toBe(3);
    await auth.logout(first.session.id);
    expect(await auth.authenticateSession(first.session.id)).toBeUndefined();
    expect(await auth.authenticateSession(second.session.id)).toBeDefined();
    expect(await auth.logoutEverywhere(user.id)).toBe(2);
    expect(await auth.authenticateSession(second.session.id)).toBeUndefined();
    expect(await auth.authenticateSession(third.session.id)).toBeUndefined();
    expect(await auth.authenticateSession("")).toBeUndefined();
    expect(await auth.authenticateSession("made-up")).toBeUndefined();
  });

  test("setPassword applies the policy, replaces the password and ends sessions", async () => {
    const { session } = await auth.login("alice@example.com", PASSWORD, "192.0.2.1");
    const weak = await auth.setPassword(user.id, "short").catch((error: unknown) => error);
    expect(weak).toMatchObject({ code: "weak_password" });
    await auth.setPassword(user.id, "another Good password");
    expect(await auth.authenticateSession(session.id)).toBeUndefined();
    expect((await loginError("alice@example.com", PASSWORD)).code).toBe("invalid_credentials");
    await auth.login("alice@example.com", "another Good password", "192.0.2.1");
  });
});

describe("throttling", () => {
  test("five failures lock the account for the rest of the window, from any address", async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      expect((await loginError("alice@example.com", "wrong password 42", `192.0.2.${attempt}`)).code).toBe("invalid_credentials");
      clock += 60_000;
    }
    const throttled = await loginError("alice@example.com", PASSWORD, "198.51.100.7");
    expect(throttled.code).toBe("throttled");
    // The first failure was 5 minutes ago; it ages out of the 15-minute window in 10.
    expect(throttled.retryAfterSeconds).toBe(10 * 60);
    const audited = (await store.audit.list({ limit: 1 }))[0]!;
    expect([audited.decision, audited.detail.reason]).toEqual(["deny", "throttled"]);
    clock += 10 * 60_000;
    expect((await auth.login("alice@example.com", PASSWORD, "198.51.100.7")).user.id).toBe(user.id);
  });

  test("twenty failures from one address lock it for every account", async () => {
    for (let attempt = 0; attempt < 20; attempt++) await loginError(`user${attempt}@example.com`, "wrong password 42", "203.0.113.9");
    const throttled = await loginError("alice@example.com", PASSWORD, "203.0.113.9");
    expect([throttled.code, throttled.retryAfterSeconds]).toEqual(["throttled", 15 * 60]);
    expect((await auth.login("alice@example.com", PASSWORD, "203.0.113.10")).user.id).toBe(user.id);
  });

  test("a success clears the account's failures", () => {
    const throttle = new LoginThrottle({ perAccount: 2, perAddress: 100, windowMs: 1000 });
    throttle.recordFailure("a@b.c", "ip", 0);
    throttle.recordFailure("a@b.c", "ip", 100);
    expect(throttle.retryAfterSeconds("A@B.C", "other", 200)).toBe(1);
    throttle.recordSuccess("a@b.c");
    expect(throttle.retryAfterSeconds("a@b.c", "ip", 200)).toBe(0);
  });
});

describe("sessions", () => {
  test("end after 12 idle hours; use (at most once a minute) extends them", async () => {
    const { session } = await auth.login("alice@example.com", PASSWORD, "192.0.2.1");
    clock += 11 * HOUR;
    expect((await auth.authenticateSession(session.id))?.session.expiresAt).toBe(clock + 12 * HOUR);
    clock += 11 * HOUR;
    expect(await auth.authenticateSession(session.id)).toBeDefined();
    clock += 12 * HOUR;
    expect(await auth.authenticateSession(session.id)).toBeUndefined();
  });

  test("end 7 days after login however much they are used", async () => {
    const { session } = await auth.login("alice@example.com", PASSWORD, "192.0.2.1");
    const end = clock + 7 * 24 * HOUR;
    while (clock + 10 * HOUR < end) {
      clock += 10 * HOUR;
      expect(await auth.authenticateSession(session.id)).toBeDefined();
    }
    expect((await auth.authenticateSession(session.id))?.session.expiresAt).toBe(end);
    clock = end;
    expect(await auth.authenticateSession(session.id)).toBeUndefined();
  });

  test("the CSRF token must match the session's", async () => {
    const { session } = await auth.login("alice@example.com", PASSWORD, "192.0.2.1");
    const other = await auth.login("alice@example.com", PASSWORD, "192.0.2.1");
    const active = (await auth.authenticateSession(session.id))!.session;
    expect(auth.checkCsrf(active, session.csrfToken)).toBe(true);
    expect(auth.checkCsrf(active, undefined)).toBe(false);
    expect(auth.checkCsrf(active, null)).toBe(false);
    expect(auth.checkCsrf(active, "")).toBe(false);
    expect(auth.checkCsrf(active, other.session.csrfToken)).toBe(false);
    expect(auth.checkCsrf(active, session.id)).toBe(false);
  });

  test("deleting the user deletes their sessions and tokens", async () => {
    await auth.login("alice@example.com", PASSWORD, "192.0.2.1");
    await auth.createApiToken(user.id, { label: "ci", scopes: ["read"] });
    store.close();
    const client = new Database(join(dir, "db.sqlite"));
    client.exec("PRAGMA foreign_keys = ON");
    client.query("DELETE FROM users WHERE id = ?").run(user.id);
    const counts = client.query("SELECT (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM api_tokens) AS tokens").get();
    client.close();
    expect(counts).toEqual({ sessions: 0, tokens: 0 });
    store = await openStore(`sqlite:${join(dir, "db.sqlite")}`);
  });
});

describe("API tokens", () => {
  test("authenticate with their scopes until they expire; only the hash is stored", async () => {
    const { token, record } = await auth.createApiToken(user.id, { label: "deploy", scopes: ["read", "write", "read"], expiresInDays: 30 });
    expect(token).toMatch(/^gigapi_[A-Za-z0-9_-]{43}$/);
    expect(record).toMatchObject({ label: "deploy", scopes: ["read", "write"], prefix: token.slice(0, 15), expiresAt: clock + 30 * 24 * HOUR, lastUsedAt: null });
    expect(await auth.authenticateApiToken(token)).toEqual({ user, scopes: ["read", "write"], tokenId: record.id });
    expect((await auth.listApiTokens(user.id))[0]).toEqual({ ...record, lastUsedAt: clock });
    expect(JSON.stringify(await auth.listApiTokens(user.id))).not.toContain(token);
    expect(databaseText()).not.toContain(token);
    expect(logged).not.toContain(token);
    clock += 30 * 24 * HOUR;
    expect(await auth.authenticateApiToken(token)).toBeUndefined();
    expect(await auth.authenticateApiToken("gigapi_made-up")).toBeUndefined();
    expect(await auth.authenticateApiToken(`gig_${token.slice(7)}`)).toBeUndefined();
  });

  test("refuse bad requests with a reason", async () => {
    const refusal = (request: Parameters<Auth["createApiToken"]>[1]) => auth.createApiToken(user.id, request).catch((error: AuthError) => [error.code, error.message]);
    expect(await refusal({ label: "x", scopes: [] })).toEqual(["invalid_request", "give the token at least one scope"]);
    expect(await refusal({ label: "x", scopes: ["root" as "read"] })).toEqual(["invalid_request", "scopes must be among read, write, admin"]);
    expect(await refusal({ label: " ", scopes: ["read"] })).toEqual(["invalid_request", "give the token a label"]);
    expect(await refusal({ label: "x", scopes: ["read"], expiresInDays: 366 })).toEqual(["invalid_request", "expiresInDays must be 1 to 365"]);
    expect(await auth.createApiToken("no-such-user", { label: "x", scopes: ["read"] }).catch((error: AuthError) => error.code)).toBe("not_found");
  });

  test("revoked by prefix or id, only by their owner, with audit records", async () => {
    const first = await auth.createApiToken(user.id, { label: "one", scopes: ["admin"] });
    const second = await auth.createApiToken(user.id, { label: "two", scopes: ["read"] });
    const bob = await store.users.create({ email: "bob@example.com", role: "member" });
    expect(await auth.revokeApiToken(bob.id, first.record.prefix)).toBe(0);
    expect(await auth.revokeApiToken(user.id, `${first.record.prefix}…`)).toBe(1);
    expect(await auth.revokeApiToken(user.id, second.record.id)).toBe(1);
    expect(await auth.authenticateApiToken(first.token)).toBeUndefined();
    expect(await auth.authenticateApiToken(second.token)).toBeUndefined();
    expect(await auth.listApiTokens(user.id)).toEqual([]);
    const events = (await store.audit.list()).filter((event) => event.action.startsWith("auth.api_token")).reverse();
    expect(events.map((event) => [event.action, event.detail.label])).toEqual([
      ["auth.api_token.create", "one"],
      ["auth.api_token.create", "two"],
      ["auth.api_token.revoke", "one"],
      ["auth.api_token.revoke", "two"],
    ]);
    expect(JSON.stringify(events)).not.toContain(first.token);
  });
});

describe("user commands", () => {
  const gigmcp = (args: string[], stdin: string) => {
    const result = Bun.spawnSync([BUN, join(ROOT, "src/main.ts"), ...args], {
      env: { PATH: process.env.PATH!, GIG_DATA_DIR: join(dir, "cli"), GIG_LOG_LEVEL: "error" },
      stdin: new TextEncoder().encode(stdin),
    });
    return { code: result.exitCode, out: result.stdout.toString() + result.stderr.toString() };
  };

  test("create and passwd read the password from stdin and apply the policy", async () => {
    expect(gigmcp(["user", "create", "weak@example.com"], "short\n")).toEqual({ code: 2, out: expect.stringContaining("at least 12 characters") });
    expect(gigmcp(["user", "create", "pw@example.com", "--admin"], `${PASSWORD}\n`)).toEqual({ code: 0, out: "created admin pw@example.com\n" });
    expect(gigmcp(["user", "create", "sso@example.com"], "").out).toContain("OIDC sign-in only");
    expect(gigmcp(["user", "passwd", "sso@example.com"], "")).toEqual({ code: 2, out: expect.stringContaining("read from stdin") });
    const passwd = gigmcp(["user", "passwd", "sso@example.com"], "Sso password 1234\n");
    expect(passwd.code).toBe(0);
    const cliStore = await openStore(`sqlite:${join(dir, "cli", "gigmcp.db")}`);
    try {
      const cliAuth = createAuth({ store: cliStore, log: createLogger("error") });
      expect((await cliAuth.login("pw@example.com", PASSWORD, "ip")).user.role).toBe("admin");
      expect((await cliAuth.login("sso@example.com", "Sso password 1234", "ip")).user.email).toBe("sso@example.com");
    } finally {
      cliStore.close();
    }
  });
});
