/**
 * The master keyring: `ID:BASE64KEY` entries, the first of which encrypts
 * and all of which decrypt. It comes from GIG_MASTER_KEY (comma-separated)
 * or GIG_MASTER_KEY_FILE (one per line); with neither, development mode keeps
 * a generated key in the data dir and says so loudly.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import * as v from "valibot";
import { ConfigError, type Config } from "../config/index.ts";

export const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
const MASTER_KEY_BYTES = 32;
const DEVELOPMENT_KEY_ID = "dev";
export const DEVELOPMENT_KEY_FILE = "master.key";

export interface MasterKey {
  id: string;
  key: Uint8Array;
}

export interface Keyring {
  /** Active key first. */
  keys: MasterKey[];
}

export interface LoadedKeyring {
  keyring: Keyring;
  /** True when neither GIG_MASTER_KEY nor GIG_MASTER_KEY_FILE is set and the data dir's key is used. */
  development: boolean;
}

type KeyringConfig = Pick<Config, "masterKey" | "masterKeyFile" | "dataDir">;

// Messages never echo the entry: a malformed one may still be most of a key.
const KeyEntry = v.pipe(
  v.string(),
  v.check((entry) => entry.includes(":"), "expected ID:BASE64KEY"),
  v.transform((entry) => ({ id: entry.slice(0, entry.indexOf(":")).trim(), key: entry.slice(entry.indexOf(":") + 1).trim() })),
  v.object({
    id: v.pipe(v.string(), v.regex(KEY_ID_PATTERN, "the key id must be 1-32 letters, digits, _ or -")),
    key: v.pipe(
      v.string(),
      v.regex(/^[A-Za-z0-9+/]+={0,2}$/, "the key is not valid base64"),
      v.check((key) => key.length % 4 === 0, "the key is not valid base64 (its length is not a multiple of 4)"),
      v.transform((key) => new Uint8Array(Buffer.from(key, "base64"))),
      v.check(
        (key) => key.length === MASTER_KEY_BYTES,
        (issue) => `the key decodes to ${(issue.input as Uint8Array).length} bytes, not ${MASTER_KEY_BYTES} (create one with \`openssl rand -base64 32\`)`,
      ),
    ),
  }),
);

/** Parses keyring entries; `where` names each entry's origin for messages ("GIG_MASTER_KEY entry 2"). */
function parseEntries(entries: { text: string; where: string }[], source: string): Keyring {
  const keys: MasterKey[] = [];
  for (const entry of entries) {
    const result = v.safeParse(KeyEntry, entry.text);
    if (!result.success) throw new ConfigError(`${entry.where}: ${result.issues[0].message}`);
    if (keys.some((key) => key.id === result.output.id)) throw new ConfigError(`${entry.where}: key id "${result.output.id}" appears twice`);
    keys.push(result.output);
  }
  if (keys.length === 0) throw new ConfigError(`${source} holds no keys: add a line ID:BASE64KEY (create a key with \`openssl rand -base64 32\`)`);
  return { keys };
}

/** The keyring of GIG_MASTER_KEY: comma-separated entries. */
export function parseKeyringList(value: string): Keyring {
  const entries = value.split(",").map((text, index) => ({ text: text.trim(), where: `GIG_MASTER_KEY entry ${index + 1}` }));
  return parseEntries(entries.filter((entry) => entry.text !== ""), "GIG_MASTER_KEY");
}

/** The keyring of a file: one entry per line, blank lines and # comments ignored. */
export function parseKeyringFile(text: string, label: string): Keyring {
  const entries = text.split("\n").map((line, index) => ({ text: line.trim(), where: `${label} line ${index + 1}` }));
  return parseEntries(entries.filter((entry) => entry.text !== "" && !entry.text.startsWith("#")), label);
}

/** Reads a keyring file, refusing one that group or others could read or change. */
export function readKeyringFile(path: string, label = `GIG_MASTER_KEY_FILE ${path}`): Keyring {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    throw new ConfigError(`${label} cannot be opened (${(error as NodeJS.ErrnoException).code ?? "error"}): check the path and that this user may read it`);
  }
  try {
    // fstat of the opened descriptor: the file checked is the file read.
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new ConfigError(`${label} is not a regular file`);
    if ((stat.mode & 0o077) !== 0) {
      throw new ConfigError(`${label} is accessible by group or others (mode ${(stat.mode & 0o777).toString(8).padStart(4, "0")}): run \`chmod 600 ${path}\``);
    }
    return parseKeyringFile(readFileSync(fd, "utf8"), label);
  } finally {
    closeSync(fd);
  }
}

/** True when no keyring is configured, so the development key in the data dir is used. */
export function usesDevelopmentKey(config: KeyringConfig): boolean {
  return config.masterKey === undefined && config.masterKeyFile === undefined;
}

let warnedAboutDevelopmentKey = false;

/**
 * The configured keyring; in development mode the data dir's key, created on
 * first use. `warn` receives the development-mode warning, once per process.
 */
export function loadKeyring(config: KeyringConfig, warn: (message: string) => void = (message) => console.error(message)): LoadedKeyring {
  if (config.masterKey !== undefined && config.masterKeyFile !== undefined) {
    throw new ConfigError("GIG_MASTER_KEY and GIG_MASTER_KEY_FILE are both set: keep only one (prefer the file)");
  }
  if (config.masterKey !== undefined) return { keyring: parseKeyringList(config.masterKey), development: false };
  if (config.masterKeyFile !== undefined) return { keyring: readKeyringFile(config.masterKeyFile), development: false };
  const path = join(config.dataDir, DEVELOPMENT_KEY_FILE);
  const created = !existsSync(path) && createDevelopmentKeyFile(path);
  if (!warnedAboutDevelopmentKey) {
    warnedAboutDevelopmentKey = true;
    warn(
      `WARNING: development mode: no GIG_MASTER_KEY or GIG_MASTER_KEY_FILE is set, so secrets are sealed with ${created ? "a new key written to " : "the key in "}` +
        `${path}, next to the database it protects. Do not use this in production: set GIG_MASTER_KEY_FILE (see README).`,
    );
  }
  return { keyring: readKeyringFile(path, `development key file ${path}`), development: true };
}

/**
 * Writes a fresh key to `path` unless it exists. The key goes to a private
 * temporary file first and is hard-linked into place: link never replaces an
 * existing file, so a concurrent first start cannot overwrite a key in use.
 */
function createDevelopmentKeyFile(path: string): boolean {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.${Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex")}.tmp`;
  const key = crypto.getRandomValues(new Uint8Array(MASTER_KEY_BYTES));
  const fd = openSync(temporary, "wx", 0o600);
  try {
    writeSync(
      fd,
      `# Gig'MCP development master key, created ${new Date().toISOString()}.\n` +
        "# Development only: for production set GIG_MASTER_KEY_FILE to a keyring kept elsewhere.\n" +
        `${DEVELOPMENT_KEY_ID}:${Buffer.from(key).toString("base64")}\n`,
    );
    fsyncSync(fd);
  } finally {
    closeSync(fd);
    key.fill(0);
  }
  try {
    linkSync(temporary, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  } finally {
    unlinkSync(temporary);
  }
}
