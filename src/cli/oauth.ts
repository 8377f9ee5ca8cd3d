/**
 * OAuth from the command line: admins register each vendor's app, and users
 * connect their own accounts (`gigmcp connect google`), list and revoke them.
 */
import { loadConfig } from "../config/index.ts";
import { createLogger } from "../log/index.ts";
import { createConnections, FLOW_MAX_AGE_MS, type OAuthConnections } from "../oauth/index.ts";
import type { Store } from "../store/index.ts";
import { output, requirePositionals, table, UsageError, type Command, type CommandGroup, type Invocation } from "./command.ts";
import { date, json, tenant, tenantOf, withAuditingStore } from "./manage.ts";
import { readSecretFromStdin } from "./secrets.ts";

const POLL_MS = 500;

/** The connections of this data dir, with the vault of the configured keyring. */
function withConnections<T>(work: (connections: OAuthConnections, store: Store) => Promise<T>): Promise<T> {
  return withAuditingStore((store, vault) => {
    const config = loadConfig();
    return work(createConnections({ config, store, vault, log: createLogger(config.logLevel) }), store);
  });
}

export const connectCommand: Command = {
  name: "connect",
  summary: "Connect a user's account at an OAuth vendor: prints the URL to open, waits until it is done.",
  usage: "connect VENDOR [--tenant EMAIL] [--json]",
  options: { ...tenant, ...json },
  details:
    "Open the printed URL in a browser and consent at the vendor; it redirects back to the running\n" +
    "gateway (<GIG_PUBLIC_URL>/api/v1/oauth/callback), which stores the tokens sealed for this user.\n" +
    "The scopes asked for are those the installed servers of that vendor declare. Needs the\n" +
    "vendor's OAuth app (`gigmcp oauth-app set`) and `gigmcp serve` running. Gives up after 10 minutes.",
  run: (invocation) =>
    withConnections(async (connections, store) => {
      const [vendor] = requirePositionals(invocation, ["VENDOR"]);
      const owner = await tenantOf(store, invocation);
      const started = Date.now();
      const { url, expiresAt } = await connections.begin(vendor!, owner.id);
      if (invocation.values.json) console.log(JSON.stringify({ vendor, url, expiresAt }));
      else console.log(`Open this URL to connect ${vendor} for ${owner.email}:\n\n  ${url}\n\nWaiting for the vendor to redirect back…`);
      while (Date.now() < started + FLOW_MAX_AGE_MS) {
        const connection = await store.oauthConnections.get(vendor!, owner.id);
        if (connection && connection.updatedAt >= started && connection.status === "connected") {
          output(invocation, { vendor, status: connection.status, scopes: connection.scopes, expiresAt: connection.expiresAt }, () => `connected ${vendor} (scopes: ${connection.scopes.join(" ") || "none"})`);
          return 0;
        }
        await Bun.sleep(POLL_MS);
      }
      console.error(`gigmcp connect: ${vendor} was not connected within 10 minutes; run the command again (\`gigmcp audit tail\` shows refusals)`);
      return 1;
    }),
};

export const connectionCommands: CommandGroup = {
  name: "connections",
  summary: "users' connections to OAuth vendors (tokens sealed per user, refreshed by the gateway)",
  commands: [
    {
      name: "connections list",
      summary: "Vendors the installed servers use, and whether the user is connected to each; never a token.",
      usage: "connections list [--tenant EMAIL] [--json]",
      options: { ...tenant, ...json },
      run: (invocation) =>
        withConnections(async (connections, store) => {
          const owner = await tenantOf(store, invocation);
          const list = await connections.list(owner.id);
          output(invocation, list, () =>
            table(
              ["VENDOR", "STATUS", "SERVERS", "SCOPES", "EXPIRES", "APP"],
              list.map((entry) => [
                entry.vendor,
                entry.status + (entry.problem ? ` (${entry.problem})` : ""),
                entry.servers.join(" ") || "-",
                entry.scopes.join(" ") || "-",
                entry.expiresAt === null ? "-" : date(entry.expiresAt),
                entry.appConfigured ? "registered" : "missing (gigmcp oauth-app set)",
              ]),
            ),
          );
        }),
    },
    {
      name: "connections revoke",
      summary: "Disconnect: delete the user's tokens for a vendor and ask the vendor to revoke them.",
      usage: "connections revoke VENDOR [--tenant EMAIL] [--json]",
      options: { ...tenant, ...json },
      details:
        "The tokens are deleted here first, then the vendor's RFC 7009 revocation endpoint (its preset or\n" +
        "the app's --revoke-url) is asked to revoke them. If the vendor has none or does not confirm, the\n" +
        "command says so: revoke the app's access in the account settings at the vendor.",
      run: (invocation) =>
        withConnections(async (connections, store) => {
          const [vendor] = requirePositionals(invocation, ["VENDOR"]);
          const owner = await tenantOf(store, invocation);
          const result = await connections.revoke(vendor!, owner.id, "cli");
          if (!result) {
            console.error(`gigmcp connections revoke: ${owner.email} has no ${vendor} connection`);
            return 1;
          }
          const atVendor = {
            revoked: `and at ${vendor}`,
            unsupported: `here; ${vendor} has no revocation endpoint, so revoke the app's access in the ${vendor} account settings`,
            failed: `here, but not at ${vendor}: ${result.problem}`,
          }[result.atVendor];
          output(invocation, { vendor, ...result }, () => `revoked ${vendor} for ${owner.email} ${atVendor}`);
        }),
    },
  ],
};

function appInput(invocation: Invocation) {
  const { values } = invocation;
  const text = (name: string) => (typeof values[name] === "string" ? (values[name] as string) : undefined);
  const clientId = text("client-id");
  if (!clientId) throw new UsageError("--client-id is required: the client id the vendor issued for your app");
  const pkce = text("pkce");
  if (pkce !== undefined && pkce !== "true" && pkce !== "false") throw new UsageError("--pkce must be true or false");
  return {
    clientId,
    authorizeUrl: text("authorize-url") ?? null,
    tokenUrl: text("token-url") ?? null,
    revokeUrl: text("revoke-url") ?? null,
    scopes: text("scopes")?.split(/[\s,]+/).filter(Boolean) ?? null,
    pkce: pkce === undefined ? null : pkce === "true",
  };
}

export const oauthAppCommands: CommandGroup = {
  name: "oauth-app",
  summary: "OAuth apps registered at vendors (client secrets sealed, never shown)",
  commands: [
    {
      name: "oauth-app set",
      summary: "Register or replace a vendor's OAuth app; the client secret is read from stdin.",
      usage: "oauth-app set VENDOR --client-id ID [--public] [--authorize-url URL] [--token-url URL] [--revoke-url URL] [--scopes 'S S…'] [--pkce true|false] < CLIENT_SECRET",
      options: {
        "client-id": { type: "string" },
        public: { type: "boolean" },
        "authorize-url": { type: "string" },
        "token-url": { type: "string" },
        "revoke-url": { type: "string" },
        scopes: { type: "string" },
        pkce: { type: "string" },
      },
      details:
        "Register the app at the vendor first, with the redirect URI <GIG_PUBLIC_URL>/api/v1/oauth/callback.\n" +
        "Built-in endpoints exist for google, microsoft, slack, hubspot, zoho, atlassian, box, dropbox,\n" +
        "github, mailchimp, reddit, salesforce, twitter, xero, blackbaud and stack-exchange; give both URLs\n" +
        "for any other vendor (or one hosted per customer). --scopes are asked for on top of the servers'\n" +
        "own (e.g. offline_access). --revoke-url: the vendor's RFC 7009 revocation endpoint, told on\n" +
        "disconnect (built in for google, reddit, salesforce, twitter and xero). --public: a public client\n" +
        "without a secret (PKCE only).",
      run: (invocation) =>
        withConnections(async (connections) => {
          const [vendor] = requirePositionals(invocation, ["VENDOR"]);
          const input = appInput(invocation);
          const clientSecret = invocation.values.public ? null : await readSecretFromStdin();
          const app = await connections.setApp(vendor!, { ...input, clientSecret }, "cli");
          console.log(`registered the ${app.vendor} app (client ${app.clientId}${app.hasClientSecret ? ", secret sealed" : ", public"})`);
        }),
    },
    {
      name: "oauth-app list",
      summary: "Registered OAuth apps: client id, endpoints, scopes, PKCE; never the secret.",
      usage: "oauth-app list [--json]",
      options: json,
      run: (invocation) =>
        withConnections(async (connections) => {
          const apps = await connections.apps();
          output(invocation, { apps, redirectUri: connections.redirectUri }, () =>
            [
              table(
                ["VENDOR", "CLIENT ID", "SECRET", "PKCE", "SCOPES", "AUTHORIZE URL", "TOKEN URL", "REVOKE URL", "FROM"],
                apps.map((app) => [
                  app.vendor,
                  app.clientId,
                  app.hasClientSecret ? "sealed" : "none",
                  String(app.pkce),
                  app.scopes.join(" ") || "-",
                  app.authorizeUrl ?? "-",
                  app.tokenUrl ?? "-",
                  app.revokeUrl ?? "-",
                  app.source,
                ]),
              ),
              "",
              `Redirect URI to register at each vendor: ${connections.redirectUri}`,
            ].join("\n"),
          );
        }),
    },
    {
      name: "oauth-app remove",
      summary: "Remove a vendor's stored OAuth app.",
      usage: "oauth-app remove VENDOR",
      run: (invocation) =>
        withConnections(async (connections) => {
          const [vendor] = requirePositionals(invocation, ["VENDOR"]);
          await connections.removeApp(vendor!, "cli");
          console.log(`removed the ${vendor} app`);
        }),
    },
  ],
};
