/**
 * Commands around secrets and what happened to them: credential values
 * (read from stdin only, never shown again), the master keyring, and the
 * audit log.
 */
import { isatty } from "node:tty";
import { loadConfig } from "../config/index.ts";
import { CREDENTIAL_TYPES, type AuditEvent, type CredentialType, type Store } from "../store/index.ts";
import {
  InvalidSecretError,
  openVault,
  parseCredentialSecret,
  rotateSealedRecords,
  sealCredential,
  sealedKeyUsage,
  type CredentialSecret,
} from "../vault/index.ts";
import { output, requirePositionals, table, UsageError, type CommandGroup, type Invocation } from "./command.ts";
import { date, json, tenant, tenantOf, withAuditingStore, withStore } from "./manage.ts";

const MAX_SECRET_BYTES = 64 * 1024;

/** The secret piped to stdin, without one trailing newline. Never from argv: that shows in `ps` and shell history. */
export async function readSecretFromStdin(): Promise<string> {
  if (isatty(0)) {
    throw new UsageError("the secret is read from stdin: pipe it in, e.g. `printf %s \"$TOKEN\" | gigmcp credential set …` or `… < secret-file`");
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of Bun.stdin.stream()) {
    size += chunk.length;
    if (size > MAX_SECRET_BYTES) throw new UsageError(`the secret on stdin is larger than ${MAX_SECRET_BYTES / 1024} KiB`);
    chunks.push(chunk);
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(Buffer.concat(chunks)).replace(/\r?\n$/, "");
  if (text === "") throw new UsageError("stdin was empty: pipe the secret in");
  return text;
}

function credentialType(value: unknown): CredentialType | undefined {
  if (value === undefined) return undefined;
  if (!(CREDENTIAL_TYPES as readonly string[]).includes(String(value))) throw new UsageError(`--type must be one of ${CREDENTIAL_TYPES.join(", ")}`);
  return value as CredentialType;
}

export const credentialCommands: CommandGroup = {
  name: "credential",
  summary: "secret values of server credentials (sealed at rest, per tenant)",
  commands: [
    {
      name: "credential set",
      summary: "Set a credential's value, read from stdin.",
      usage: "credential set SERVER CREDENTIAL_ID [--tenant EMAIL] [--type api_key|basic|oauth2] < SECRET",
      options: { ...tenant, type: { type: "string" } },
      details:
        "The value is read from stdin until EOF (one trailing newline is dropped), sealed with the\n" +
        "master key and never printed. api_key: the key. basic: user:password. oauth2: a JSON object\n" +
        '{"accessToken": "…", "refreshToken"?, "expiresAt"? (ms since epoch or ISO time), "tokenUrl"?,\n' +
        '"clientId"?, "clientSecret"?}; refreshToken needs tokenUrl. Values are single-line.\n\n' +
        "CREDENTIAL_ID must be declared by the server (`server add --credential`); an id it does not\n" +
        "declare is accepted only with --type, and is unused until the server declares it.",
      run: (invocation) =>
        withStore(async (store) => {
          const [serverName, credentialId] = requirePositionals(invocation, ["SERVER", "CREDENTIAL_ID"]);
          const requested = credentialType(invocation.values.type);
          const owner = await tenantOf(store, invocation);
          const server = await store.servers.get(serverName!);
          const declared = server.credentials.find((credential) => credential.id === credentialId);
          const declaredIds = server.credentials.map((credential) => credential.id).join(", ") || "none";
          if (declared && requested && declared.type !== requested) {
            throw new UsageError(`server ${server.name} declares ${credentialId} as ${declared.type}, not ${requested}`);
          }
          const type = declared?.type ?? requested;
          if (!type) {
            throw new UsageError(
              `server ${server.name} does not declare credential ${credentialId} (it declares: ${declaredIds}); ` +
                "re-add the server with --credential, or give --type to store it anyway",
            );
          }
          let secret: CredentialSecret;
          try {
            secret = parseCredentialSecret(type, await readSecretFromStdin());
          } catch (error) {
            if (!(error instanceof InvalidSecretError)) throw error;
            console.error(`gigmcp credential set: ${error.message}`);
            return 2;
          }
          const { vault } = openVault(loadConfig());
          const key = { serverName: server.name, credentialId: credentialId!, tenantId: owner.id };
          const { record, replaced } = await store.credentials.set({ ...key, type, sealed: sealCredential(vault, key, secret) });
          console.log(`credential ${server.name}/${credentialId} set for ${owner.email} (${replaced ? "updated" : "created"} ${date(record.updatedAt)})`);
          if (!declared) {
            console.error(`note: server ${server.name} does not declare ${credentialId} (it declares: ${declaredIds}); it is unused until it does`);
          }
        }),
    },
    {
      name: "credential list",
      summary: "List credentials that have a value (never the values themselves).",
      usage: "credential list [--tenant EMAIL] [--json]",
      options: { ...tenant, ...json },
      details:
        "Without --tenant, lists every tenant's credentials. STATUS is ok, undeclared (the server does\n" +
        "not declare the id, so it is unused) or no-server (the server was removed; the value is kept).",
      run: (invocation) =>
        withStore(async (store) => {
          requirePositionals(invocation, []);
          const only = invocation.values.tenant === undefined ? undefined : await tenantOf(store, invocation);
          const emails = new Map((await store.users.list()).map((user) => [user.id, user.email]));
          const servers = new Map((await store.servers.list()).map((server) => [server.name, server]));
          const credentials = (await store.credentials.list(only?.id)).map((credential) => {
            const server = servers.get(credential.serverName);
            return {
              server: credential.serverName,
              id: credential.credentialId,
              type: credential.type,
              tenant: emails.get(credential.tenantId) ?? credential.tenantId,
              status: !server ? "no-server" : server.credentials.some((spec) => spec.id === credential.credentialId) ? "ok" : "undeclared",
              createdAt: credential.createdAt,
              updatedAt: credential.updatedAt,
            };
          });
          output(invocation, credentials, () =>
            table(
              ["SERVER", "ID", "TYPE", "TENANT", "STATUS", "SET", "UPDATED"],
              credentials.map((credential) => [
                credential.server,
                credential.id,
                credential.type,
                credential.tenant,
                credential.status,
                date(credential.createdAt),
                date(credential.updatedAt),
              ]),
            ),
          );
        }),
    },
    {
      name: "credential remove",
      summary: "Delete a credential's value.",
      usage: "credential remove SERVER CREDENTIAL_ID [--tenant EMAIL]",
      options: { ...tenant },
      run: (invocation) =>
        withStore(async (store) => {
          const [serverName, credentialId] = requirePositionals(invocation, ["SERVER", "CREDENTIAL_ID"]);
          const owner = await tenantOf(store, invocation);
          await store.credentials.remove(serverName!, credentialId!, owner.id);
          console.log(`removed credential ${serverName}/${credentialId} of ${owner.email}`);
        }),
    },
  ],
};

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

export const vaultCommands: CommandGroup = {
  name: "vault",
  summary: "the master keyring that seals every stored secret",
  commands: [
    {
      name: "vault status",
      summary: "List the keyring's key ids and how many sealed records each wraps.",
      usage: "vault status [--json]",
      options: { ...json },
      details: "A key id marked missing wraps records that cannot be opened until that key is back in the keyring.",
      run: (invocation) =>
        withStore(async (store) => {
          requirePositionals(invocation, []);
          const { vault, development } = openVault(loadConfig());
          const usage = await sealedKeyUsage(store);
          const keys = [
            ...vault.keyIds.map((id) => ({ id, role: id === vault.activeKeyId ? "active" : "decrypt-only", records: usage[id] ?? 0 })),
            ...Object.keys(usage)
              .filter((id) => !vault.keyIds.includes(id))
              .map((id) => ({ id, role: "missing", records: usage[id]! })),
          ];
          output(invocation, { development, activeKeyId: vault.activeKeyId, keys }, () =>
            table(["KEY", "ROLE", "RECORDS"], keys.map((key) => [key.id, key.role, String(key.records)])),
          );
          return keys.some((key) => key.role === "missing") ? 1 : 0;
        }),
    },
    {
      name: "vault rotate",
      summary: "Re-wrap every sealed record under the active (first) key of the keyring.",
      usage: "vault rotate [--json]",
      options: { ...json },
      details:
        "To rotate: put the new key FIRST in GIG_MASTER_KEY or GIG_MASTER_KEY_FILE, keeping the old\n" +
        "ones listed, and restart every gateway with that keyring; then run this. Each record is\n" +
        "re-wrapped on its own (payloads are untouched), so it is safe while gateways run. When no\n" +
        "record references an old key any more, remove that key from the keyring.",
      run: (invocation) =>
        withStore(async (store) => {
          requirePositionals(invocation, []);
          const { vault } = openVault(loadConfig());
          const report = await rotateSealedRecords(store, vault);
          const unused = vault.keyIds.filter((id) => id !== vault.activeKeyId && !report.keyUsage[id]);
          output(invocation, { ...report, removableKeyIds: unused }, () =>
            [
              `re-wrapped ${plural(report.rewrapped, "sealed record")} under key ${report.activeKeyId} (${report.unchanged} already were)`,
              ...report.failed.map((failure) => `failed: ${failure.label}: ${failure.reason}`),
              `key ids still referenced: ${Object.entries(report.keyUsage).map(([id, count]) => `${id} (${plural(count, "record")})`).join(", ") || "none"}`,
              ...(unused.length > 0 ? [`no record uses ${unused.join(", ")} any more: it can be removed from the keyring`] : []),
            ].join("\n"),
          );
          return report.failed.length > 0 ? 1 : 0;
        }),
    },
  ],
};

const DETAIL_ORDER = ["server", "host", "method", "path", "status", "reason"];
const POLL_MS = 500;
const DEFAULT_TAIL = 20;
const MAX_TAIL = 1000;

/** `key=value` pairs of an event's detail: the usual fields first, values quoted only when they need it. */
function detailText(detail: Record<string, unknown>): string {
  const keys = [...DETAIL_ORDER.filter((key) => key in detail), ...Object.keys(detail).filter((key) => !DETAIL_ORDER.includes(key))];
  return keys
    .map((key) => {
      const value = detail[key];
      const text = typeof value === "string" && /^[^\s"=]+$/.test(value) ? value : typeof value === "number" ? String(value) : JSON.stringify(value);
      return `${key}=${text}`;
    })
    .join(" ");
}

export const auditCommands: CommandGroup = {
  name: "audit",
  summary: "the audit log: what was allowed, denied or had a credential injected",
  commands: [
    {
      name: "audit tail",
      summary: "Print the latest audit events, oldest first.",
      usage: "audit tail [-n N] [--follow] [--json]",
      options: { lines: { type: "string", short: "n" }, follow: { type: "boolean", short: "f" }, ...json },
      details: "With --json, each event is one JSON object per line. --follow polls for new events until interrupted.",
      run: (invocation) =>
        withStore(async (store) => {
          requirePositionals(invocation, []);
          const count = invocation.values.lines === undefined ? DEFAULT_TAIL : Number(invocation.values.lines);
          if (!Number.isInteger(count) || count < 0 || count > MAX_TAIL) throw new UsageError(`-n must be a whole number from 0 to ${MAX_TAIL}`);
          const print = eventPrinter(store, invocation);
          const latest = await store.audit.list({ limit: Math.max(count, 1) });
          for (const event of latest.slice(0, count).reverse()) await print(event);
          if (!invocation.values.follow) return;
          let lastId = latest[0]?.id ?? 0;
          let stopped = false;
          const stop = () => (stopped = true);
          process.once("SIGINT", stop).once("SIGTERM", stop);
          while (!stopped) {
            await Bun.sleep(POLL_MS);
            for (const event of await store.audit.list({ afterId: lastId, limit: MAX_TAIL })) {
              await print(event);
              lastId = event.id;
            }
          }
        }),
    },
    {
      name: "audit verify",
      summary: "Recompute the audit log's hash chain; exit 1 at the first edited, deleted or inserted event.",
      usage: "audit verify [--json]",
      options: { ...json },
      details:
        "Each event's link is an HMAC (keyed by the audit key sealed in the vault) over the link before it.\n" +
        "Prints the head (last event id and link): keep it elsewhere, since deleting the newest events\n" +
        "together with the stored head can only be noticed against a head recorded earlier.",
      run: (invocation) =>
        withAuditingStore(async (store) => {
          requirePositionals(invocation, []);
          const result = await store.audit.verify();
          const head = result.head ? `head ${result.head.id} ${result.head.chain}` : "no chained events yet";
          const before = result.unchained > 0 ? `; ${plural(result.unchained, "unchained event")} before the chain` : "";
          output(invocation, result, () =>
            result.intact
              ? `${plural(result.verified, "event")} verified, chain intact (${head})${before}`
              : `chain broken: ${result.problem}\n${plural(result.verified, "event")} verified before it (${head})${before}`,
          );
          return result.intact ? 0 : 1;
        }),
    },
  ],
};

/** Prints one event as a line of text or JSON; tenant ids become emails. */
function eventPrinter(store: Store, invocation: Invocation): (event: AuditEvent) => Promise<void> {
  let emails = new Map<string, string>();
  return async (event) => {
    if (event.tenantId !== null && !emails.has(event.tenantId)) emails = new Map((await store.users.list()).map((user) => [user.id, user.email]));
    const tenantEmail = event.tenantId === null ? null : (emails.get(event.tenantId) ?? event.tenantId);
    if (invocation.values.json) {
      console.log(JSON.stringify({ ...event, tenant: tenantEmail }));
      return;
    }
    const who = [...new Set([event.actor, tenantEmail].filter((name): name is string => name !== null))].join(" ") || "-";
    console.log([date(event.time), event.action, event.decision, who, detailText(event.detail)].join("  ").trimEnd());
  };
}
