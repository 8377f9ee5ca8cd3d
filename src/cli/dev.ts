/**
 * Development bootstrap (`serve --dev`, used by `make run`): makes a fresh
 * data dir immediately useful, and is safe to repeat.
 */
import { isAbsolute, relative } from "node:path";
import type { Store } from "../store/index.ts";
import { selfCommand } from "./self.ts";

export const DEV_ADMIN_EMAIL = "admin@localhost";
export const DEV_PROFILE = "default";
const DEV_TOKEN_LABEL = "dev";

export async function bootstrapDevelopment(store: Store): Promise<{ profile: string; token: string; admin: string }> {
  const admin = (await store.users.firstAdmin()) ?? (await store.users.create({ email: DEV_ADMIN_EMAIL, role: "admin" }));
  for (const name of ["echo", "fetch"]) {
    await store.servers.upsert({ name, kind: "builtin", command: name, args: [], env: {}, egress: [], roPaths: [], tier: "sealed", timeoutMs: null, limits: null, credentials: [] });
  }
  const profile =
    (await store.profiles.list(admin.id)).find((candidate) => candidate.name === DEV_PROFILE) ??
    (await store.profiles.create(admin.id, DEV_PROFILE, { prefixTools: true }));
  const members = new Set((await store.profiles.members(profile.id)).map((member) => member.server.name));
  for (const name of ["echo", "fetch"]) if (!members.has(name)) await store.profiles.addServer(profile.id, name, null);
  // Each run prints a new token; the previous development token stops working.
  await store.tokens.revokeByLabel(profile.id, DEV_TOKEN_LABEL);
  const { token } = await store.tokens.create(profile.id, DEV_TOKEN_LABEL);
  return { profile: profile.name, token, admin: admin.email };
}

/** What a user needs to connect a client, printed by `serve --dev`. */
export function connectionHelp(baseUrl: string, profile: string, token: string, dashboard?: { admin: string; dataDir: string }): string {
  const url = `${baseUrl}/mcp/p/${profile}`;
  // The command exactly as this shell can run it: the executable by its path, on this data dir.
  const passwd = `GIG_DATA_DIR=${dashboard?.dataDir} ${selfCommand().map((part) => relativeToHere(part)).join(" ")} user passwd ${dashboard?.admin}`;
  const web = dashboard ? [`Dashboard: ${baseUrl}/ (log in as ${dashboard.admin}; set its password with: printf %s 'a long passphrase' | ${passwd})`, ""] : [];
  return [
    "",
    "Gig'MCP is running.",
    `MCP URL: ${url}`,
    `Token: ${token}`,
    "",
    "Claude Code:",
    `  claude mcp add --transport http gigmcp ${url} --header "Authorization: Bearer ${token}"`,
    "",
    ...web,
  ].join("\n");
}

/** `./dist/gigmcp` rather than an absolute path when the file is below the working directory. */
function relativeToHere(path: string): string {
  const here = relative(process.cwd(), path);
  return here.startsWith("..") || isAbsolute(here) ? path : `./${here}`;
}
