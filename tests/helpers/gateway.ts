/**
 * Test harness: a real gateway (HTTP server, store on a temp SQLite file,
 * plain runner) started in-process on a free loopback port, and real SDK
 * clients connected to it over streamable HTTP.
 */
import { Client, type ClientOptions } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadConfig } from "../../src/config/index.ts";
import { startGateway, type RunningGateway } from "../../src/gateway/index.ts";
import { createLogger, type Logger } from "../../src/log/index.ts";
import { testDatabase } from "./database.ts";
import { openStore, type AuditEvent, type AuditFilter, type ServerSpec, type Store, type User } from "../../src/store/index.ts";
import { apiAuthOf, createApi, oidcLogin } from "../../src/api/index.ts";
import { createAuth, type Auth } from "../../src/auth/index.ts";
import { createBackends, restartOnRotation, type BackendsOptions } from "../../src/cli/runner.ts";
import type { OAuthConnections } from "../../src/oauth/index.ts";

export const ROOT = resolve(import.meta.dir, "../..");
export const BUN = process.execPath;
export const MAIN = join(ROOT, "src/main.ts");
export const PROBE = join(ROOT, "tests/fixtures/probe-server.ts");

export interface TestGateway extends RunningGateway {
  store: Store;
  admin: User;
  dataDir: string;
  /** The database it uses; another instance can join it with `sameDatabaseAs`. */
  dbUrl: string;
  /** Present when started with `api: true`. */
  auth?: Auth;
  /** This instance's OAuth connections: the access tokens it injects. */
  connections: OAuthConnections;
  /** Creates a profile of the admin holding `servers` and returns a token for it. */
  profile(name: string, servers: (string | { name: string; tools: string[] })[], options?: { prefixTools?: boolean; tenant?: User }): Promise<string>;
  addServer(spec: Partial<ServerSpec> & { name: string }): Promise<void>;
  close(): Promise<void>;
}

/** A loopback port free right now (for settings that must be known before a server starts). */
export function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

export function tempDir(prefix = "gigmcp-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A stdio server spec running the probe fixture under `name`. */
export function probeSpec(name: string, extra: Partial<ServerSpec> = {}): Partial<ServerSpec> & { name: string } {
  return { name, command: BUN, args: [PROBE], env: { PROBE_NAME: name }, ...extra };
}

export async function startTestGateway(
  env: Record<string, string> = {},
  options: {
    pageSize?: number;
    egress?: BackendsOptions["egress"];
    api?: boolean;
    log?: Logger;
    /** A second instance on the first one's database (which the first one drops). */
    sameDatabaseAs?: TestGateway;
  } = {},
): Promise<TestGateway> {
  const dataDir = tempDir();
  const joined = options.sameDatabaseAs;
  // The data dir's default file name, so CLI runs on the same data dir find the database.
  const database = joined ? { url: joined.dbUrl, drop: async () => {} } : await testDatabase(dataDir, "gigmcp.db");
  const config = loadConfig({ GIG_DATA_DIR: dataDir, GIG_LISTEN: "127.0.0.1:0", GIG_SANDBOX: "off", GIG_LOG_LEVEL: "error", GIG_DB_URL: database.url, ...env });
  const log = options.log ?? createLogger(config.logLevel);
  // As `gigmcp serve` opens it: audit appends on the writer thread.
  const store = await openStore(config.dbUrl, { auditThread: true });
  let running: RunningGateway | undefined;
  const { runner, credentialEnvironment, credentialProblem, connections, vault, readiness } = await createBackends({
    config,
    store,
    log,
    selfCommand: [BUN, MAIN],
    egress: options.egress,
    requestsOf: (serverId, tenantId) => running?.gateway.supervisor.find(serverId, tenantId)?.requests ?? [],
  });
  const auth = options.api ? createAuth({ store, log }) : undefined;
  const api = auth
    ? createApi({
        config,
        store,
        vault,
        version: "test",
        auth: apiAuthOf(auth),
        secureCookies: false,
        oidc: oidcLogin(config),
        connections,
        backends: {
          running: () => running?.gateway.backendStatus() ?? [],
          tools: (server, tenantId) => (running ? running.gateway.serverTools(server, tenantId) : Promise.reject(new Error("the gateway is starting"))),
        },
      })
    : undefined;
  const admin = joined ? joined.admin : await store.users.create({ email: "admin@test", role: "admin" });
  if (!joined) await store.servers.upsert({ name: "echo", kind: "builtin", command: "echo", args: [], env: {}, egress: [], roPaths: [], tier: "sealed", timeoutMs: null, limits: null, credentials: [] });
  running = await startGateway({
    config,
    store,
    runner,
    log,
    version: "test",
    selfCommand: [BUN, MAIN],
    pageSize: options.pageSize,
    credentialEnvironment,
    credentialProblem,
    api,
    readiness,
  });
  restartOnRotation(connections, store, running.gateway.supervisor, log);
  return {
    ...running,
    store,
    admin,
    dataDir,
    dbUrl: database.url,
    auth,
    connections,
    async profile(name, servers, { prefixTools = true, tenant = admin } = {}) {
      const profile = await store.profiles.create(tenant.id, name, { prefixTools });
      for (const server of servers) {
        if (typeof server === "string") await store.profiles.addServer(profile.id, server, null);
        else await store.profiles.addServer(profile.id, server.name, server.tools);
      }
      return (await store.tokens.create(profile.id, "test")).token;
    },
    async addServer(spec) {
      await store.servers.create({ kind: "stdio", command: BUN, args: [], env: {}, egress: [], roPaths: [], tier: "sealed", timeoutMs: null, limits: null, credentials: [], ...spec });
    },
    async close() {
      await running.stop();
      store.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A real SDK client connected to `url` with a bearer token. */
export async function connect(url: string, token: string, options: ClientOptions = {}, init: RequestInit = {}): Promise<Client> {
  const client = new Client({ name: "gigmcp-test", version: "1.0.0" }, options);
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) } },
  });
  await client.connect(transport);
  return client;
}

/** Text of the first content item of a tool result. */
export function text(result: unknown): string {
  const content = (result as { content: { type: string; text?: string }[] }).content;
  return content[0]?.text ?? "";
}

/** Audit events matching `filter` once one satisfies `found`: tool calls and egress decisions are written in batches, a few ms later. */
export async function auditEventually(store: Store, filter: AuditFilter, found: (event: AuditEvent) => boolean, ms = 3_000): Promise<AuditEvent[]> {
  for (const deadline = Date.now() + ms; ; await Bun.sleep(10)) {
    const events = await store.audit.list(filter);
    if (events.some(found) || Date.now() > deadline) return events;
  }
}
