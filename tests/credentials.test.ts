/**
 * Credentials in the store: values sealed per (server, credential, tenant),
 * never listed; placeholders; gateway blobs; what servers may declare; and
 * the audit decisions the egress proxy records.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { credentialSpecProblem, openStore, type CredentialSpec, type ServerSpec, type Store, type User } from "../src/store/index.ts";
import {
  blobContext,
  createVault,
  InvalidSecretError,
  openCredential,
  parseCredentialSecret,
  parseKeyringList,
  sealCredential,
  VaultError,
  type CredentialSecret,
} from "../src/vault/index.ts";
import { tempDir } from "./helpers/gateway.ts";

const vault = createVault(parseKeyringList(`k1:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`));
const GITHUB: CredentialSpec = { id: "token", type: "api_key", header: "Authorization", format: "Bearer {token}", env: "GITHUB_TOKEN" };
const SPEC: ServerSpec = {
  name: "github", kind: "stdio", command: "/bin/cat", args: [], env: {}, egress: ["api.github.com"], roPaths: [], tier: "sealed",
  timeoutMs: null, limits: null, credentials: [GITHUB],
};

let dir: string;
let store: Store;
let alice: User;
let bob: User;

function dbPath(): string {
  return join(dir, "db.sqlite");
}

async function setCredential(tenant: User, secret: CredentialSecret, credentialId = "token") {
  const key = { serverName: "github", credentialId, tenantId: tenant.id };
  return store.credentials.set({ ...key, type: secret.type, sealed: sealCredential(vault, key, secret) });
}

beforeEach(async () => {
  dir = tempDir();
  store = await openStore(`sqlite:${dbPath()}`);
  alice = await store.users.create({ email: "alice@example.com", role: "admin" });
  bob = await store.users.create({ email: "bob@example.com", role: "member" });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("credential values", () => {
  test("each type is parsed from what an operator pipes in", () => {
    expect(parseCredentialSecret("api_key", "sk-123")).toEqual({ type: "api_key", key: "sk-123" });
    expect(parseCredentialSecret("basic", "user:pa:ss")).toEqual({ type: "basic", user: "user", password: "pa:ss" });
    expect(parseCredentialSecret("basic", "sk_live_x:")).toEqual({ type: "basic", user: "sk_live_x", password: "" });
    expect(
      parseCredentialSecret(
        "oauth2",
        JSON.stringify({ accessToken: "at", refreshToken: "rt", expiresAt: "2030-01-01T00:00:00Z", tokenUrl: "https://auth.example.com/token", clientId: "c" }),
      ),
    ).toEqual({ type: "oauth2", accessToken: "at", refreshToken: "rt", expiresAt: Date.UTC(2030, 0, 1), tokenUrl: "https://auth.example.com/token", clientId: "c" });
  });

  test("malformed values are refused without the value in the message", () => {
    const SECRET = "s3cr3t-value";
    const cases: [Parameters<typeof parseCredentialSecret>, string][] = [
      [["api_key", `${SECRET}\nsecond line`], "invalid api_key credential: the key must not contain newlines or other control characters"],
      [["api_key", ""], "invalid api_key credential: the key must not be empty"],
      [["basic", SECRET], "invalid basic credential: expected user:password"],
      [["basic", `:${SECRET}`], "invalid basic credential: the user must not be empty"],
      [["oauth2", `{"accessToken": "${SECRET}"`], "invalid oauth2 credential: not valid JSON"],
      [["oauth2", JSON.stringify({ access_token: SECRET })], 'invalid oauth2 credential: unknown field "access_token"'],
      [["oauth2", JSON.stringify([SECRET])], "invalid oauth2 credential: expected a JSON object"],
      [["oauth2", JSON.stringify({ refreshToken: SECRET })], "invalid oauth2 credential: accessToken is required"],
      [["oauth2", JSON.stringify({ accessToken: 42 })], "invalid oauth2 credential: accessToken must be a string"],
      [["oauth2", JSON.stringify({ accessToken: SECRET, refreshToken: SECRET })], "invalid oauth2 credential: refreshToken needs tokenUrl"],
      [["oauth2", JSON.stringify({ accessToken: SECRET, expiresAt: "soon" })], "invalid oauth2 credential: expiresAt must be"],
      [["oauth2", JSON.stringify({ accessToken: SECRET, tokenUrl: "http://auth.example.com/" })], "invalid oauth2 credential: tokenUrl must be an https URL"],
    ];
    for (const [args, message] of cases) {
      let caught: unknown;
      try {
        parseCredentialSecret(...args);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(InvalidSecretError);
      expect((caught as Error).message).toStartWith(message);
      expect((caught as Error).message).not.toContain(SECRET);
    }
  });
});

describe("credentials repository", () => {
  test("set seals the value; list never shows it; get and open return it", async () => {
    await store.servers.create(SPEC);
    const first = await setCredential(alice, { type: "api_key", key: "ghp_first" });
    expect(first.replaced).toBe(false);
    const second = await setCredential(alice, { type: "api_key", key: "ghp_second" });
    expect(second).toMatchObject({ replaced: true, record: { createdAt: first.record.createdAt } });

    const listed = await store.credentials.list(alice.id);
    expect(listed).toEqual([{ serverName: "github", credentialId: "token", tenantId: alice.id, type: "api_key", createdAt: first.record.createdAt, updatedAt: second.record.updatedAt }]);
    const raw = new Database(dbPath(), { readonly: true });
    const rows = JSON.stringify(raw.query("SELECT * FROM credentials").all());
    raw.close();
    expect(rows).not.toContain("ghp_");
    expect(openCredential(vault, (await store.credentials.get("github", "token", alice.id))!)).toEqual({ type: "api_key", key: "ghp_second" });
    expect(await store.credentials.get("github", "token", bob.id)).toBeUndefined();
  });

  test("tenants are separate, and a row copied to another tenant does not open", async () => {
    await setCredential(alice, { type: "api_key", key: "alice-key" });
    await setCredential(bob, { type: "basic", user: "bob", password: "bob-pass" });
    expect((await store.credentials.list(bob.id)).map((credential) => credential.type)).toEqual(["basic"]);
    expect(await store.credentials.list()).toHaveLength(2);
    expect(openCredential(vault, (await store.credentials.get("github", "token", bob.id))!)).toEqual({ type: "basic", user: "bob", password: "bob-pass" });

    const raw = new Database(dbPath());
    raw.query("UPDATE credentials SET sealed = (SELECT sealed FROM credentials WHERE tenant_id = ?1), type = 'api_key' WHERE tenant_id = ?2").run(alice.id, bob.id);
    raw.close();
    const stolen = (await store.credentials.get("github", "token", bob.id))!;
    expect(() => openCredential(vault, stolen)).toThrow(VaultError);
    expect(() => openCredential(vault, stolen)).not.toThrow("alice-key");

    await store.credentials.remove("github", "token", alice.id);
    expect(await store.credentials.list(alice.id)).toEqual([]);
    await expect(store.credentials.remove("github", "token", alice.id)).rejects.toThrow("no credential github/token is set for this tenant");
  });

  test("ids and tenants are checked", async () => {
    const sealed = sealCredential(vault, { serverName: "github", credentialId: "token", tenantId: alice.id }, { type: "api_key", key: "x" });
    await expect(store.credentials.set({ serverName: "github", credentialId: "a/b", tenantId: alice.id, type: "api_key", sealed })).rejects.toThrow("invalid credential id");
    await expect(store.credentials.set({ serverName: "GitHub", credentialId: "token", tenantId: alice.id, type: "api_key", sealed })).rejects.toThrow("invalid server name");
    await expect(store.credentials.set({ serverName: "github", credentialId: "token", tenantId: "nobody", type: "api_key", sealed })).rejects.toThrow("tenant does not exist");
  });

  test("setting and removing credentials bumps the revision; placeholders and blobs do not", async () => {
    const start = await store.revision();
    await setCredential(alice, { type: "api_key", key: "x" });
    expect(await store.revision()).toBe(start + 1);
    await store.placeholders.getOrCreate("github", "token", alice.id);
    await store.sealedBlobs.put("proxy-ca", vault.seal(new Uint8Array([1]), blobContext("proxy-ca")));
    expect(await store.revision()).toBe(start + 1);
    await store.credentials.remove("github", "token", alice.id);
    expect(await store.revision()).toBe(start + 2);
  });
});

describe("placeholders", () => {
  test("stable across reopening the store and re-adding the server; distinct per tenant and credential", async () => {
    await store.servers.create(SPEC);
    const placeholder = await store.placeholders.getOrCreate("github", "token", alice.id);
    expect(placeholder).toMatch(/^gigph-[0-9a-f]{32}$/);
    expect(await store.placeholders.getOrCreate("github", "token", alice.id)).toBe(placeholder);
    expect(await store.placeholders.getOrCreate("github", "token", bob.id)).not.toBe(placeholder);
    expect(await store.placeholders.getOrCreate("github", "other", alice.id)).not.toBe(placeholder);

    await store.servers.remove("github");
    await store.servers.create(SPEC);
    store.close();
    store = await openStore(`sqlite:${dbPath()}`);
    expect(await store.placeholders.getOrCreate("github", "token", alice.id)).toBe(placeholder);
    expect(await store.placeholders.resolve(placeholder)).toEqual({ serverName: "github", credentialId: "token", tenantId: alice.id });
    expect(await store.placeholders.resolve("gigph-00000000000000000000000000000000")).toBeUndefined();
  });
});

describe("sealed blobs", () => {
  test("put replaces, get returns the sealed value", async () => {
    expect(await store.sealedBlobs.get("proxy-ca")).toBeUndefined();
    await store.sealedBlobs.put("proxy-ca", vault.seal(new TextEncoder().encode("first"), blobContext("proxy-ca")));
    const created = (await store.sealedBlobs.get("proxy-ca"))!;
    await store.sealedBlobs.put("proxy-ca", vault.seal(new TextEncoder().encode("second"), blobContext("proxy-ca")));
    const replaced = (await store.sealedBlobs.get("proxy-ca"))!;
    expect(replaced.createdAt).toBe(created.createdAt);
    expect(new TextDecoder().decode(vault.open(replaced.sealed, blobContext("proxy-ca")))).toBe("second");
    expect(() => vault.open(replaced.sealed, blobContext("other"))).toThrow(VaultError);
    expect((await store.sealedBlobs.all()).map((blob) => blob.name)).toEqual(["proxy-ca"]);
  });
});

describe("server credential declarations", () => {
  test("sealed servers need header and format; entrusted need env; ids and env names are unique", () => {
    const entrusted: CredentialSpec = { id: "token", type: "api_key", env: "API_KEY" };
    expect(credentialSpecProblem("sealed", [GITHUB], {})).toBeUndefined();
    expect(credentialSpecProblem("sealed", [{ ...GITHUB, env: undefined }], {})).toBeUndefined();
    expect(credentialSpecProblem("entrusted", [entrusted], {})).toBeUndefined();
    const problems: [Parameters<typeof credentialSpecProblem>, string][] = [
      [["sealed", [entrusted], {}], "credential token: a sealed server needs header=NAME and format=FORMAT"],
      [["sealed", [{ ...GITHUB, format: "Bearer" }], {}], "credential token: format must contain {token} exactly once"],
      [["sealed", [{ ...GITHUB, header: "Bad Header" }], {}], "credential token: header must be an HTTP header name"],
      [["sealed", [{ ...GITHUB, header: "Host" }], {}], "credential token: header Host is reserved"],
      [["sealed", [GITHUB, GITHUB], {}], "credential token is declared twice"],
      [["sealed", [GITHUB], { GITHUB_TOKEN: "x" }], "credential token: env GITHUB_TOKEN is already set"],
      [["entrusted", [{ ...entrusted, env: undefined }], {}], "credential token: an entrusted server needs env=VAR"],
      [["entrusted", [{ ...entrusted, header: "X-Key", format: "{token}" }], {}], "credential token: header and format apply to sealed servers only"],
      [["entrusted", [{ ...entrusted, type: "password" as never }], {}], "credential token: type must be one of api_key, basic, oauth2"],
      [["entrusted", [{ ...entrusted, id: "a/b" }], {}], 'credential a/b: id must be 1-64 letters, digits, "_", "." or "-"'],
      [["entrusted", [{ type: "api_key", env: "X" } as CredentialSpec], {}], "credential ?: id is required"],
    ];
    for (const [args, message] of problems) expect(credentialSpecProblem(...args)).toStartWith(message);
  });

  test("the store refuses a server whose declarations break the rules, and keeps valid ones", async () => {
    await expect(store.servers.create({ ...SPEC, tier: "entrusted" })).rejects.toThrow("server github: credential token: header and format apply to sealed servers only");
    expect((await store.servers.create(SPEC)).credentials).toEqual([GITHUB]);
    expect((await store.servers.get("github")).credentials).toEqual([GITHUB]);
  });
});

describe("audit", () => {
  test("the egress proxy's inject decision is recorded and read back in order", async () => {
    const detail = { server: "github", host: "api.github.com", method: "GET", path: "/user", status: 200, credential: "token" };
    const first = await store.audit.record({ action: "egress", decision: "inject", tenantId: alice.id, detail });
    await store.audit.record({ action: "egress", decision: "deny", tenantId: alice.id, detail: { server: "github", host: "evil.example", reason: "not in egress allowlist" } });
    expect((await store.audit.list({ limit: 1 })).map((event) => event.decision)).toEqual(["deny"]);
    expect((await store.audit.list({ afterId: first.id - 1 })).map((event) => event.decision)).toEqual(["inject", "deny"]);
    expect(first).toMatchObject({ action: "egress", decision: "inject", detail });
  });
});
