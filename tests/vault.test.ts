/**
 * The vault: envelope encryption bound to its context, the master keyring
 * (parsing, file permissions, development key) and key rotation over a real
 * store.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../src/config/index.ts";
import { openStore, type Store, type User } from "../src/store/index.ts";
import {
  blobContext,
  createVault,
  credentialContext,
  loadKeyring,
  openCredential,
  parseKeyringFile,
  parseKeyringList,
  readKeyringFile,
  rotateSealedRecords,
  sealCredential,
  sealedKeyUsage,
  usesDevelopmentKey,
  VaultError,
  type Keyring,
  type SealContext,
  type SealedSecret,
} from "../src/vault/index.ts";
import { tempDir } from "./helpers/gateway.ts";

const SECRET = "sk-live-correct-horse-battery-staple";
const CONTEXT: SealContext = { purpose: "credential", id: "github/token", tenantId: "tenant-a" };

function newKey(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64");
}

function keyring(...ids: string[]): { ring: Keyring; text: string; keys: Record<string, string> } {
  const keys = Object.fromEntries(ids.map((id) => [id, newKey()]));
  const text = ids.map((id) => `${id}:${keys[id]}`).join(",");
  return { ring: parseKeyringList(text), text, keys };
}

const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** The error `work` throws, checked to be a VaultError free of secret material. */
function vaultError(work: () => unknown, secrets: string[] = []): VaultError {
  let caught: unknown;
  try {
    work();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(VaultError);
  for (const secret of [SECRET, ...secrets]) expect((caught as Error).message).not.toContain(secret);
  return caught as VaultError;
}

describe("seal and open", () => {
  const { ring, keys } = keyring("k1");
  const vault = createVault(ring);

  test("round trip, with a fresh data key and nonces every time", () => {
    const sealed = vault.seal(encode(SECRET), CONTEXT);
    expect(sealed).toMatchObject({ version: 1, keyId: "k1" });
    expect(JSON.stringify(sealed)).not.toContain(SECRET);
    expect(decode(vault.open(sealed, CONTEXT))).toBe(SECRET);
    const again = vault.seal(encode(SECRET), CONTEXT);
    expect(again.ciphertext).not.toBe(sealed.ciphertext);
    expect(again.wrappedKey).not.toBe(sealed.wrappedKey);
    expect(decode(vault.open(vault.seal(new Uint8Array(), CONTEXT), CONTEXT))).toBe("");
    const large = crypto.getRandomValues(new Uint8Array(100_000));
    expect(vault.open(vault.seal(large, CONTEXT), CONTEXT)).toEqual(large);
  });

  test("a record moved to another tenant, id or purpose does not open", () => {
    const sealed = vault.seal(encode(SECRET), CONTEXT);
    for (const moved of [{ ...CONTEXT, tenantId: "tenant-b" }, { ...CONTEXT, id: "github/other" }, { ...CONTEXT, purpose: "blob" }]) {
      const error = vaultError(() => vault.open(sealed, moved), [keys.k1!]);
      expect(error.message).toContain('master key "k1"');
      expect(error.message).toContain(`${moved.purpose} ${moved.id}`);
    }
  });

  test("tampering with any field is refused, never answered with garbage", () => {
    const sealed = vault.seal(encode(SECRET), CONTEXT);
    const flip = (text: string) => {
      const bytes = Buffer.from(text, "base64");
      bytes[bytes.length - 1]! ^= 1;
      return bytes.toString("base64");
    };
    for (const field of ["ciphertext", "nonce", "wrappedKey", "keyNonce"] as const) {
      vaultError(() => vault.open({ ...sealed, [field]: flip(sealed[field]) }, CONTEXT));
    }
    const malformed = [{ ...sealed, version: 2 }, { ...sealed, nonce: "short" }, { ...sealed, ciphertext: undefined }, { ...sealed, extra: 1 }];
    for (const record of malformed) {
      expect(vaultError(() => vault.open(record as unknown as SealedSecret, CONTEXT)).message).toContain("not a valid sealed record");
    }
  });

  test("a wrong or unknown master key gives a clear error naming the key and record, without secrets", () => {
    const sealed = vault.seal(encode(SECRET), CONTEXT);
    const impostor = keyring("k1");
    const wrongKey = vaultError(() => createVault(impostor.ring).open(sealed, CONTEXT), [keys.k1!, impostor.keys.k1!]);
    expect(wrongKey.message).toBe(
      'master key "k1" does not open credential github/token: the key with that id has changed, or the record was altered or copied from another tenant, credential or purpose',
    );
    const other = keyring("k2", "k3");
    const unknown = vaultError(() => createVault(other.ring).open(sealed, CONTEXT), Object.values(other.keys));
    expect(unknown.message).toContain('sealed under master key "k1", which is not in the keyring (k2, k3)');
  });

  test("rewrap moves the data key to the active key and leaves the payload alone", () => {
    const old = vault.seal(encode(SECRET), CONTEXT);
    const both = { keys: [...keyring("k2").ring.keys, ...ring.keys] };
    const rotated = createVault(both).rewrap(old, CONTEXT);
    expect(rotated).toMatchObject({ keyId: "k2", ciphertext: old.ciphertext, nonce: old.nonce });
    expect(rotated.wrappedKey).not.toBe(old.wrappedKey);
    expect(decode(createVault({ keys: [both.keys[0]!] }).open(rotated, CONTEXT))).toBe(SECRET);
    vaultError(() => createVault(both).rewrap(old, { ...CONTEXT, tenantId: "tenant-b" }));
  });
});

describe("keyring", () => {
  let dir: string;
  beforeEach(() => (dir = tempDir()));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("entries: the first is active, all decrypt; whitespace, comments and blank lines are fine", () => {
    const a = newKey();
    const b = newKey();
    expect(parseKeyringList(` new:${a} , old:${b} `).keys.map((key) => key.id)).toEqual(["new", "old"]);
    const file = parseKeyringFile(`# rotated 2025-01\n\nnew:${a}\n  old:${b}\n`, "ring");
    expect(file.keys.map((key) => key.id)).toEqual(["new", "old"]);
    expect(file.keys[0]!.key).toEqual(new Uint8Array(Buffer.from(a, "base64")));
  });

  test("malformed entries are refused with clear messages that never echo the key", () => {
    const short = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
    const cases: [string, string][] = [
      [`k1:${short}`, "GIG_MASTER_KEY entry 1: the key decodes to 16 bytes, not 32 (create one with `openssl rand -base64 32`)"],
      ["k1:not base64!!", "GIG_MASTER_KEY entry 1: the key is not valid base64"],
      [`k1:${newKey().slice(1)}`, "GIG_MASTER_KEY entry 1: the key is not valid base64 (its length is not a multiple of 4)"],
      [`bad id:${newKey()}`, "GIG_MASTER_KEY entry 1: the key id must be 1-32 letters, digits, _ or -"],
      [`${"x".repeat(33)}:${newKey()}`, "GIG_MASTER_KEY entry 1: the key id must be 1-32 letters, digits, _ or -"],
      [`k1:${newKey()},${newKey()}`, "GIG_MASTER_KEY entry 2: expected ID:BASE64KEY"],
      [`k1:${newKey()},k1:${newKey()}`, 'GIG_MASTER_KEY entry 2: key id "k1" appears twice'],
      [" , ", "GIG_MASTER_KEY holds no keys"],
    ];
    for (const [text, message] of cases) {
      let caught: unknown;
      try {
        parseKeyringList(text);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as Error).message).toStartWith(message);
      for (const part of text.split(/[,:]/).filter((part) => part.length >= 16)) expect((caught as Error).message).not.toContain(part);
    }
    expect(() => parseKeyringFile(`# only a comment\n\nk1:${short}\n`, "ring")).toThrow("ring line 3: the key decodes to 16 bytes");
  });

  test("a keyring file readable by group or others is refused; both variables at once too", () => {
    const path = join(dir, "keyring");
    writeFileSync(path, `k1:${newKey()}\n`, { mode: 0o644 });
    chmodSync(path, 0o644);
    expect(() => readKeyringFile(path)).toThrow(`GIG_MASTER_KEY_FILE ${path} is accessible by group or others (mode 0644): run \`chmod 600 ${path}\``);
    chmodSync(path, 0o640);
    expect(() => readKeyringFile(path)).toThrow("(mode 0640)");
    chmodSync(path, 0o600);
    expect(readKeyringFile(path).keys.map((key) => key.id)).toEqual(["k1"]);
    expect(() => readKeyringFile(join(dir, "missing"))).toThrow("cannot be opened (ENOENT)");
    expect(() => loadKeyring({ dataDir: dir, masterKey: `k1:${newKey()}`, masterKeyFile: path })).toThrow("keep only one");
    expect(loadKeyring({ dataDir: dir, masterKey: undefined, masterKeyFile: path }).development).toBe(false);
  });

  test("development mode creates one 0600 key in the data dir, warns at most once, and reuses the key", () => {
    const config = { dataDir: join(dir, "data"), masterKey: undefined, masterKeyFile: undefined };
    expect(usesDevelopmentKey(config)).toBe(true);
    const warnings: string[] = [];
    const first = loadKeyring(config, (message) => warnings.push(message));
    expect(first.development).toBe(true);
    const path = join(config.dataDir, "master.key");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const content = readFileSync(path, "utf8");
    const sealed = createVault(first.keyring).seal(encode(SECRET), CONTEXT);

    const second = loadKeyring(config, (message) => warnings.push(message));
    expect(readFileSync(path, "utf8")).toBe(content);
    expect(decode(createVault(second.keyring).open(sealed, CONTEXT))).toBe(SECRET);
    // Once per process: an earlier test file in this process may already have had it.
    expect(warnings.length).toBeLessThanOrEqual(1);
    for (const warning of warnings) expect(warning).toContain("development mode");
    expect(usesDevelopmentKey({ ...config, masterKey: "k:x" })).toBe(false);
  });
});

describe("rotation", () => {
  let dir: string;
  let store: Store;
  let alice: User;
  let bob: User;

  beforeEach(async () => {
    dir = tempDir();
    store = await openStore(`sqlite:${join(dir, "db.sqlite")}`);
    alice = await store.users.create({ email: "alice@example.com", role: "admin" });
    bob = await store.users.create({ email: "bob@example.com", role: "member" });
  });

  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("with a two-key ring every record is re-wrapped; then the new key alone opens everything", async () => {
    const old = keyring("old");
    const oldVault = createVault(old.ring);
    for (const [tenant, value] of [[alice, "alice-secret"], [bob, "bob-secret"]] as const) {
      const key = { serverName: "github", credentialId: "token", tenantId: tenant.id };
      await store.credentials.set({ ...key, type: "api_key", sealed: sealCredential(oldVault, key, { type: "api_key", key: value }) });
    }
    await store.sealedBlobs.put("proxy-ca", oldVault.seal(encode("ca private key"), blobContext("proxy-ca")));
    expect(await sealedKeyUsage(store)).toEqual({ old: 3 });

    const fresh = keyring("new");
    const both = createVault({ keys: [...fresh.ring.keys, ...old.ring.keys] });
    const report = await rotateSealedRecords(store, both);
    expect(report).toEqual({ activeKeyId: "new", rewrapped: 3, unchanged: 0, failed: [], keyUsage: { new: 3 } });
    expect((await rotateSealedRecords(store, both)).unchanged).toBe(3);

    const onlyNew = createVault(parseKeyringList(fresh.text));
    const opened = await Promise.all((await store.credentials.all()).map(async (record) => openCredential(onlyNew, record)));
    expect(opened.map((secret) => (secret.type === "api_key" ? secret.key : "")).sort()).toEqual(["alice-secret", "bob-secret"]);
    expect(decode(onlyNew.open((await store.sealedBlobs.get("proxy-ca"))!.sealed, blobContext("proxy-ca")))).toBe("ca private key");
  });

  test("a record sealed under a key missing from the ring is reported, the others still rotate", async () => {
    const lost = createVault(keyring("lost").ring);
    const kept = keyring("kept");
    const key = { serverName: "github", credentialId: "token", tenantId: alice.id };
    await store.credentials.set({ ...key, type: "api_key", sealed: sealCredential(lost, key, { type: "api_key", key: SECRET }) });
    await store.sealedBlobs.put("proxy-ca", createVault(kept.ring).seal(encode("ca"), blobContext("proxy-ca")));
    const vault = createVault({ keys: [...keyring("new").ring.keys, ...kept.ring.keys] });
    const report = await rotateSealedRecords(store, vault);
    expect(report.rewrapped).toBe(1);
    expect(report.failed).toEqual([{ label: `credential github/token (tenant ${alice.id})`, reason: expect.stringContaining('master key "lost"') }]);
    expect(JSON.stringify(report)).not.toContain(SECRET);
    expect(report.keyUsage).toEqual({ lost: 1, new: 1 });
  });

  test("a value set while rotation runs is never overwritten by a re-wrap of the old one", async () => {
    const old = keyring("old");
    const oldVault = createVault(old.ring);
    const key = { serverName: "github", credentialId: "token", tenantId: alice.id };
    const stale = sealCredential(oldVault, key, { type: "api_key", key: "stale" });
    await store.credentials.set({ ...key, type: "api_key", sealed: stale });
    const current = sealCredential(oldVault, key, { type: "api_key", key: "current" });
    await store.credentials.set({ ...key, type: "api_key", sealed: current });

    const both = createVault({ keys: [...keyring("new").ring.keys, ...old.ring.keys] });
    expect(await store.credentials.rewrap(key, stale, both.rewrap(stale, credentialContext(key)))).toBe(false);
    expect((await store.credentials.get("github", "token", alice.id))!.sealed).toEqual(current);
    expect(await store.credentials.rewrap(key, current, both.rewrap(current, credentialContext(key)))).toBe(true);
    expect(openCredential(both, (await store.credentials.get("github", "token", alice.id))!)).toEqual({ type: "api_key", key: "current" });
  });

  test("the seal context of a credential names its server, id and tenant", () => {
    expect(credentialContext({ serverName: "github", credentialId: "token", tenantId: alice.id })).toEqual({
      purpose: "credential",
      id: "github/token",
      tenantId: alice.id,
    });
  });
});
