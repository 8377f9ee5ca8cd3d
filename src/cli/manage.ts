/**
 * Commands that edit configuration in the data dir: profiles, tokens,
 * servers and users. They work while `gigmcp serve` runs; it picks the
 * changes up within a second.
 */
import { existsSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { isatty } from "node:tty";
import { AuthError, createAuth, hashPassword, MAX_PASSWORD_LENGTH, passwordProblem } from "../auth/index.ts";
import { createLogger } from "../log/index.ts";
import { LIMIT_RANGES, loadConfig, parseBytes } from "../config/index.ts";
import {
  credentialSpecProblem,
  openStore,
  parseCredentialSpec,
  type CredentialSpec,
  type SandboxLimits,
  type Store,
  type Tier,
  type User,
} from "../store/index.ts";
import { chainAudit, openVault, type Vault } from "../vault/index.ts";
import { output, requirePositionals, table, UsageError, type CommandGroup, type Invocation } from "./command.ts";

/** Opens the configured store for one command. */
export async function withStore<T>(work: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(loadConfig().dbUrl);
  try {
    return await work(store);
  } finally {
    store.close();
  }
}

/** Like withStore, for commands that record audit events or verify them: the vault's audit key links them into the chain. */
export function withAuditingStore<T>(work: (store: Store, vault: Vault) => Promise<T>): Promise<T> {
  return withStore(async (store) => {
    const { vault } = openVault(loadConfig());
    await chainAudit(store, vault);
    return work(store, vault);
  });
}

/** The user a command acts for: --tenant EMAIL, else the first admin. */
export async function tenantOf(store: Store, invocation: Invocation): Promise<User> {
  const email = invocation.values.tenant;
  if (typeof email === "string") {
    const user = await store.users.byEmail(email);
    if (!user) throw new UsageError(`no user with email ${email} (see \`gigmcp user list\`)`);
    return user;
  }
  const admin = await store.users.firstAdmin();
  if (!admin) throw new UsageError("there are no users yet: run `gigmcp user create EMAIL --admin` or `gigmcp serve --dev`");
  return admin;
}

export const json = { json: { type: "boolean" } } as const;
export const tenant = { tenant: { type: "string" } } as const;

export function date(ms: number | null): string {
  return ms === null ? "never" : new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
}

function list(value: unknown): string[] | null {
  if (value === undefined) return null;
  const items = String(value).split(",").map((item) => item.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError("--tools needs at least one tool name");
  return items;
}

export const profileCommands: CommandGroup = {
  name: "profile",
  summary: "profiles: one MCP endpoint each, aggregating a set of servers",
  commands: [
    {
      name: "profile create",
      summary: "Create a profile (its endpoint is /mcp/p/NAME).",
      usage: "profile create NAME [--no-prefix] [--tenant EMAIL] [--json]",
      options: { "no-prefix": { type: "boolean" }, ...tenant, ...json },
      run: (invocation) =>
        withStore(async (store) => {
          const [name] = requirePositionals(invocation, ["NAME"]);
          const owner = await tenantOf(store, invocation);
          const profile = await store.profiles.create(owner.id, name!, { prefixTools: !invocation.values["no-prefix"] });
          output(invocation, profile, () => `created profile ${profile.name}`);
        }),
    },
    {
      name: "profile list",
      summary: "List profiles and their servers.",
      usage: "profile list [--tenant EMAIL] [--json]",
      options: { ...tenant, ...json },
      run: (invocation) =>
        withStore(async (store) => {
          requirePositionals(invocation, []);
          const owner = await tenantOf(store, invocation);
          const profiles = await Promise.all(
            (await store.profiles.list(owner.id)).map(async (profile) => ({
              name: profile.name,
              prefixTools: profile.prefixTools,
              servers: (await store.profiles.members(profile.id)).map(({ server, tools }) => ({ name: server.name, tools })),
              createdAt: profile.createdAt,
            })),
          );
          output(invocation, profiles, () =>
            table(
              ["NAME", "PREFIX", "SERVERS"],
              profiles.map((profile) => [
                profile.name,
                profile.prefixTools ? "yes" : "no",
                profile.servers.map((server) => (server.tools ? `${server.name}[${server.tools.join(",")}]` : server.name)).join(" "),
              ]),
            ),
          );
        }),
    },
    {
      name: "profile delete",
      summary: "Delete a profile and its tokens.",
      usage: "profile delete NAME [--tenant EMAIL]",
      options: { ...tenant },
      run: (invocation) =>
        withStore(async (store) => {
          const [name] = requirePositionals(invocation, ["NAME"]);
          await store.profiles.delete((await tenantOf(store, invocation)).id, name!);
          console.log(`deleted profile ${name}`);
        }),
    },
    {
      name: "profile add-server",
      summary: "Add a server to a profile, optionally exposing only some of its tools.",
      usage: "profile add-server PROFILE SERVER [--tools a,b] [--tenant EMAIL]",
      options: { tools: { type: "string" }, ...tenant },
      details: "Adding a server that is already in the profile replaces its tool selection.",
      run: (invocation) =>
        withStore(async (store) => {
          const [profileName, serverName] = requirePositionals(invocation, ["PROFILE", "SERVER"]);
          const profile = await store.profiles.get((await tenantOf(store, invocation)).id, profileName!);
          const tools = list(invocation.values.tools);
          await store.profiles.addServer(profile.id, serverName!, tools);
          console.log(`profile ${profile.name} now serves ${serverName}${tools ? ` (tools: ${tools.join(", ")})` : ""}`);
        }),
    },
    {
      name: "profile remove-server",
      summary: "Remove a server from a profile.",
      usage: "profile remove-server PROFILE SERVER [--tenant EMAIL]",
      options: { ...tenant },
      run: (invocation) =>
        withStore(async (store) => {
          const [profileName, serverName] = requirePositionals(invocation, ["PROFILE", "SERVER"]);
          const profile = await store.profiles.get((await tenantOf(store, invocation)).id, profileName!);
          await store.profiles.removeServer(profile.id, serverName!);
          console.log(`removed ${serverName} from profile ${profile.name}`);
        }),
    },
  ],
};

export const tokenCommands: CommandGroup = {
  name: "token",
  summary: "bearer tokens of a profile",
  commands: [
    {
      name: "token create",
      summary: "Create a token for a profile. It is printed once; only its hash is kept.",
      usage: "token create PROFILE [--label TEXT] [--tenant EMAIL] [--json]",
      options: { label: { type: "string" }, ...tenant, ...json },
      run: (invocation) =>
        withStore(async (store) => {
          const [profileName] = requirePositionals(invocation, ["PROFILE"]);
          const profile = await store.profiles.get((await tenantOf(store, invocation)).id, profileName!);
          const label = typeof invocation.values.label === "string" ? invocation.values.label : "cli";
          const { token } = await store.tokens.create(profile.id, label);
          output(invocation, { profile: profile.name, token }, () => token);
        }),
    },
    {
      name: "token list",
      summary: "List a profile's tokens (by prefix; tokens themselves are not stored).",
      usage: "token list PROFILE [--tenant EMAIL] [--json]",
      options: { ...tenant, ...json },
      run: (invocation) =>
        withStore(async (store) => {
          const [profileName] = requirePositionals(invocation, ["PROFILE"]);
          const profile = await store.profiles.get((await tenantOf(store, invocation)).id, profileName!);
          const tokens = await store.tokens.list(profile.id);
          output(invocation, tokens, () =>
            table(
              ["ID", "PREFIX", "LABEL", "CREATED", "LAST USED"],
              tokens.map((token) => [token.id, `${token.prefix}…`, token.label, date(token.createdAt), date(token.lastUsedAt)]),
            ),
          );
        }),
    },
    {
      name: "token revoke",
      summary: "Revoke a token by its id or its prefix; open sessions using it are closed.",
      usage: "token revoke PROFILE ID|PREFIX [--tenant EMAIL]",
      options: { ...tenant },
      run: (invocation) =>
        withStore(async (store) => {
          const [profileName, which] = requirePositionals(invocation, ["PROFILE", "ID|PREFIX"]);
          const profile = await store.profiles.get((await tenantOf(store, invocation)).id, profileName!);
          const revoked = await store.tokens.revoke(profile.id, which!.replace(/…$/, ""));
          if (revoked === 0) {
            console.error(`gigmcp token revoke: no token ${which} in profile ${profile.name} (see \`gigmcp token list ${profile.name}\`)`);
            return 1;
          }
          console.log(`revoked ${revoked} token${revoked === 1 ? "" : "s"}`);
        }),
    },
  ],
};

function keyValues(values: unknown): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of (values as string[] | undefined) ?? []) {
    const at = item.indexOf("=");
    if (at <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(item.slice(0, at))) {
      throw new UsageError(`--env ${JSON.stringify(item)}: expected NAME=VALUE with NAME a valid variable name`);
    }
    env[item.slice(0, at)] = item.slice(at + 1);
  }
  return env;
}

function timeoutMs(value: unknown): number | null {
  if (value === undefined) return null;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) throw new UsageError("--timeout must be a number of seconds between 0 and 86400");
  return Math.round(seconds * 1000);
}

/** --memory/--pids/--cpu of `server add`, each checked against the same ranges as the GIG_SANDBOX_* settings. */
function sandboxLimits(values: Record<string, unknown>): SandboxLimits | null {
  const limits: SandboxLimits = {};
  const inRange = (flag: string, value: number | undefined, range: { min: number; max: number }) => {
    if (value === undefined || !Number.isInteger(value) || value < range.min || value > range.max) {
      throw new UsageError(`--${flag} must be between ${range.min} and ${range.max}${flag === "memory" ? " bytes (sizes like 256M or 2G)" : ""}`);
    }
    return value;
  };
  if (values.memory !== undefined) limits.memoryBytes = inRange("memory", parseBytes(String(values.memory)), LIMIT_RANGES.memoryBytes);
  if (values.pids !== undefined) limits.pids = inRange("pids", Number(values.pids), LIMIT_RANGES.pids);
  if (values.cpu !== undefined) limits.cpuWeight = inRange("cpu", Number(values.cpu), LIMIT_RANGES.cpuWeight);
  return Object.keys(limits).length > 0 ? limits : null;
}

function tier(value: unknown): Tier {
  if (value === undefined || value === "sealed") return "sealed";
  if (value === "entrusted") return "entrusted";
  throw new UsageError("--tier must be sealed or entrusted");
}

/** The --credential flags: id=ID,type=TYPE[,header=NAME,format=FORMAT][,env=VAR][,vendor=V,scopes=S S…] each, checked against the tier. */
function credentialSpecs(values: Record<string, unknown>, serverTier: Tier, env: Record<string, string>): CredentialSpec[] {
  const specs = ((values.credential as string[] | undefined) ?? []).map((flag) => {
    const fields = new Map<string, string>();
    for (const item of flag.split(",")) {
      const at = item.indexOf("=");
      const field = item.slice(0, at).trim();
      if (at <= 0 || fields.has(field)) throw new UsageError(`--credential ${JSON.stringify(flag)}: expected id=ID,type=TYPE[,header=NAME,format=FORMAT][,env=VAR], each field once`);
      fields.set(field, item.slice(at + 1).trim());
    }
    const scopes = fields.get("scopes");
    const parsed = parseCredentialSpec({ ...Object.fromEntries(fields), ...(scopes !== undefined && { scopes: scopes.split(/\s+/).filter(Boolean) }) });
    if ("problem" in parsed) throw new UsageError(`--credential ${JSON.stringify(flag)}: ${parsed.problem}`);
    return parsed.spec;
  });
  const problem = credentialSpecProblem(serverTier, specs, env);
  if (problem) throw new UsageError(`--credential: ${problem}`);
  return specs;
}

/** The absolute path of a command, looked up in PATH like a shell would. */
function executable(command: string): string {
  const found = isAbsolute(command) || command.includes("/") ? resolve(command) : Bun.which(command);
  if (!found || !existsSync(found) || !statSync(found).isFile()) throw new UsageError(`cannot find the executable ${command}`);
  return found;
}

export const serverCommands: CommandGroup = {
  name: "server",
  summary: "MCP servers the gateway can run",
  commands: [
    {
      name: "server add",
      summary: "Register a local stdio MCP server.",
      usage:
        "server add NAME [--tier sealed|entrusted] [--credential SPEC]… [--env K=V]… [--egress HOST]… [--ro PATH]… [--timeout SECONDS] [--memory SIZE] [--pids N] [--cpu WEIGHT] -- COMMAND [ARGS…]",
      options: {
        tier: { type: "string" },
        credential: { type: "string", multiple: true },
        env: { type: "string", multiple: true },
        egress: { type: "string", multiple: true },
        ro: { type: "string", multiple: true },
        timeout: { type: "string" },
        memory: { type: "string" },
        pids: { type: "string" },
        cpu: { type: "string" },
        ...json,
      },
      details:
        "The server starts with an empty environment except PATH and the --env variables.\n" +
        "Its executable is always readable inside the sandbox; --ro adds more paths it needs\n" +
        "(for example a language runtime outside /usr). --memory, --pids and --cpu override the\n" +
        "GIG_SANDBOX_MEMORY, GIG_SANDBOX_PIDS and GIG_SANDBOX_CPU defaults for this server.\n\n" +
        "Credentials (--credential id=ID,type=api_key|basic|oauth2[,header=NAME,format=FORMAT][,env=VAR]):\n" +
        "  sealed (default): the server never sees the secret. The egress proxy puts it in header NAME,\n" +
        "    formatted by FORMAT, whose {token} becomes the key, base64(user:password) or the access\n" +
        "    token; env=VAR, if given, receives a placeholder instead. For example:\n" +
        "    --credential 'id=github,type=api_key,header=Authorization,format=Bearer {token}'\n" +
        "  entrusted (--tier entrusted): env=VAR receives the secret itself; no header or format.\n" +
        "  oauth2 with vendor=VENDOR (and scopes=SCOPE SCOPE…): without a value set for this server, the\n" +
        "    tenant's connection to VENDOR supplies the token (`gigmcp connect VENDOR`).\n" +
        "Fields cannot contain commas. Set each credential's value with `gigmcp credential set`.",
      run: (invocation) =>
        withStore(async (store) => {
          const [name] = requirePositionals(invocation, ["NAME"]);
          const [command, ...args] = invocation.rest;
          if (!command) throw new UsageError("give the server's command after --");
          const env = keyValues(invocation.values.env);
          const serverTier = tier(invocation.values.tier);
          const credentials = credentialSpecs(invocation.values, serverTier, env);
          const server = await store.servers.create({
            name: name!,
            kind: "stdio",
            command: executable(command),
            args,
            env,
            egress: ((invocation.values.egress as string[] | undefined) ?? []).map((host) => host.toLowerCase()),
            roPaths: ((invocation.values.ro as string[] | undefined) ?? []).map((path) => resolve(path)),
            tier: serverTier,
            timeoutMs: timeoutMs(invocation.values.timeout),
            limits: sandboxLimits(invocation.values),
            credentials,
          });
          output(invocation, describeServer(server), () => `added server ${server.name}: ${[server.command, ...server.args].join(" ")}`);
        }),
    },
    {
      name: "server list",
      summary: "List registered servers.",
      usage: "server list [--json]",
      options: { ...json },
      run: (invocation) =>
        withStore(async (store) => {
          requirePositionals(invocation, []);
          const servers = (await store.servers.list()).map(describeServer);
          output(invocation, servers, () =>
            table(
              ["NAME", "KIND", "TIER", "CREDENTIALS", "COMMAND", "EGRESS"],
              servers.map((server) => [
                server.name,
                server.kind,
                server.tier,
                server.credentials.map((credential) => credential.id).join(" ") || "-",
                server.command.join(" "),
                server.egress.join(" ") || "-",
              ]),
            ),
          );
        }),
    },
    {
      name: "server remove",
      summary: "Remove a server from the gateway and from every profile (its stored credentials are kept).",
      usage: "server remove NAME",
      run: (invocation) =>
        withStore(async (store) => {
          const [name] = requirePositionals(invocation, ["NAME"]);
          await store.servers.remove(name!);
          const kept = (await store.credentials.list()).filter((credential) => credential.serverName === name).length;
          console.log(
            `removed server ${name}` +
              (kept > 0 ? ` (its ${kept} stored credential${kept === 1 ? " is" : "s are"} kept for when it is added again; \`gigmcp credential remove\` deletes them)` : ""),
          );
        }),
    },
  ],
};

/** A server as listed: environment values are not shown, only their names. */
function describeServer(server: Awaited<ReturnType<Store["servers"]["get"]>>) {
  return {
    name: server.name,
    kind: server.kind,
    tier: server.tier,
    command: server.kind === "builtin" ? [`(bundled) ${server.command}`] : [server.command, ...server.args],
    envNames: Object.keys(server.env),
    egress: server.egress,
    roPaths: server.roPaths,
    timeoutMs: server.timeoutMs,
    limits: server.limits,
    credentials: server.credentials,
  };
}

/**
 * A password piped to stdin, without one trailing newline; undefined when stdin is
 * a terminal or empty. Never from argv: that shows in `ps` and shell history.
 */
async function readPasswordFromStdin(): Promise<string | undefined> {
  if (isatty(0)) return undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of Bun.stdin.stream()) {
    size += chunk.length;
    // Four bytes a character at most; anything longer fails the policy anyway.
    if (size > MAX_PASSWORD_LENGTH * 4 + 2) throw new UsageError(`the password on stdin is longer than ${MAX_PASSWORD_LENGTH} characters`);
    chunks.push(chunk);
  }
  const password = new TextDecoder().decode(Buffer.concat(chunks)).replace(/\r?\n$/, "");
  return password === "" ? undefined : password;
}

/** The argon2id hash of a password that passes the policy for this account. */
async function acceptablePasswordHash(password: string, email: string): Promise<string> {
  const problem = passwordProblem(password, email);
  if (problem) throw new UsageError(problem);
  return hashPassword(password);
}

export const userCommands: CommandGroup = {
  name: "user",
  summary: "users (each is a tenant with its own profiles)",
  commands: [
    {
      name: "user create",
      summary: "Create a user, with the password piped to stdin or, without one, for OIDC sign-in only.",
      usage: "user create EMAIL [--admin] [--json] [< PASSWORD]",
      options: { admin: { type: "boolean" }, ...json },
      details:
        "The password is read from stdin until EOF (one trailing newline is dropped), e.g.\n" +
        "`gigmcp user create me@example.com --admin < password-file`. With nothing piped in the\n" +
        "user can sign in only through OIDC until `gigmcp user passwd` sets a password.\n" +
        "Passwords need at least 12 characters, not the email address, mixing kinds of characters\n" +
        "unless at least 20 long.",
      run: (invocation) =>
        withStore(async (store) => {
          const [email] = requirePositionals(invocation, ["EMAIL"]);
          if (!/^[^\s@]+@[^\s@]+$/.test(email!)) throw new UsageError(`${email} is not an email address`);
          const password = await readPasswordFromStdin();
          const passwordHash = password === undefined ? null : await acceptablePasswordHash(password, email!);
          const user = await store.users.create({ email: email!, role: invocation.values.admin ? "admin" : "member", passwordHash });
          output(invocation, user, () => `created ${user.role} ${user.email}${passwordHash ? "" : " (no password: OIDC sign-in only)"}`);
        }),
    },
    {
      name: "user passwd",
      summary: "Set a user's password, read from stdin; their open sessions end.",
      usage: "user passwd EMAIL < PASSWORD",
      details: "The password is read from stdin until EOF (one trailing newline is dropped).",
      run: (invocation) =>
        withStore(async (store) => {
          const [email] = requirePositionals(invocation, ["EMAIL"]);
          const user = await store.users.byEmail(email!);
          if (!user) throw new UsageError(`no user with email ${email} (see \`gigmcp user list\`)`);
          const password = await readPasswordFromStdin();
          if (password === undefined) {
            throw new UsageError("the password is read from stdin: pipe it in, e.g. `gigmcp user passwd EMAIL < password-file`");
          }
          try {
            await createAuth({ store, log: createLogger(loadConfig().logLevel) }).setPassword(user.id, password);
          } catch (error) {
            if (error instanceof AuthError) throw new UsageError(error.message);
            throw error;
          }
          console.log(`set the password of ${user.email}; their open sessions have ended`);
        }),
    },
    {
      name: "user list",
      summary: "List users.",
      usage: "user list [--json]",
      options: { ...json },
      run: (invocation) =>
        withStore(async (store) => {
          requirePositionals(invocation, []);
          const users = await store.users.list();
          output(invocation, users, () => table(["EMAIL", "ROLE", "CREATED"], users.map((user) => [user.email, user.role, date(user.createdAt)])));
        }),
    },
  ],
};
