/**
 * `gigmcp registry`: search, show, install, update and uninstall servers of
 * the signed registry index, and lint manifests and toolspecs before they are
 * published.
 */
import { readFileSync } from "node:fs";
import { loadConfig } from "../config/index.ts";
import { loadDenylist } from "../proxy/index.ts";
import builtinDenylist from "../proxy/exfil-denylist.txt" with { type: "text" };
import {
  catalogEntry,
  consentHash,
  consentSummary,
  formatLintProblem,
  installProblem,
  lintPaths,
  openRegistry,
  RegistryError,
  type Manifest,
} from "../registry/index.ts";
import { OciError } from "../oci/index.ts";
import { imageStoreOf, install, planInstall, uninstall, type InstallPlan } from "../registry/index.ts";
import type { Store } from "../store/index.ts";
import { output, requirePositionals, table, UsageError, type CommandGroup, type Invocation } from "./command.ts";
import { json, withAuditingStore } from "./manage.ts";

/** Runs a registry command, printing a RegistryError as one line with exit 1 (it says what to fix). */
function reported(command: string, work: (invocation: Invocation) => Promise<number | void>) {
  return async (invocation: Invocation) => {
    try {
      return await work(invocation);
    } catch (error) {
      if (!(error instanceof RegistryError) && !(error instanceof OciError)) throw error;
      console.error(`gigmcp ${command}: ${error.message}`);
      return 1;
    }
  };
}

function readDenylist(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read the denylist ${file}: ${(error as Error).message}`);
  }
}

function showText(manifest: Manifest): string {
  const problem = installProblem(manifest);
  return [
    ...consentSummary(manifest),
    `Source: ${manifest.source.repo} ${manifest.source.tag}${manifest.source.package ? ` (${manifest.source.package})` : ""}`,
    ...(manifest.category ? [`Category: ${manifest.category}`] : []),
    ...(manifest.description ? [`Description: ${manifest.description}`] : []),
    "Tools (* enabled by default):",
    ...manifest.tools.map((tool) => `  ${tool.default ? "*" : " "} ${tool.name}`),
    `Consent hash: ${consentHash(manifest)}`,
    ...(problem ? [`Not installable: ${problem}`] : []),
  ].join("\n");
}

const consentOptions = { yes: { type: "boolean" }, "base-url": { type: "string" }, image: { type: "boolean" }, ...json } as const;

/** Consent: --yes, or an explicit "yes" typed at a terminal. Anything else refuses. */
async function consented(invocation: Invocation, plan: InstallPlan, verb: string): Promise<boolean> {
  if (!plan.needsConsent || invocation.values.yes) return true;
  if (!process.stdin.isTTY) throw new UsageError(`${verb} needs consent to the grants above: pass --yes`);
  process.stdout.write(`${verb} ${plan.manifest.name} with these grants? Type yes to continue: `);
  for await (const line of console) return line.trim().toLowerCase() === "yes";
  return false;
}

/** Installs or updates after consent, recording the outcome (and any refusal, with its reason) in the audit log. */
async function installWithAudit(invocation: Invocation, store: Store, reference: string, verb: "install" | "update"): Promise<number> {
  const config = loadConfig();
  const audit = (decision: "allow" | "deny", detail: Record<string, unknown>) =>
    store.audit.record({ action: `registry.${verb}`, decision, actor: "cli", detail: { reference, ...detail } });
  try {
    const manifest = await openRegistry(config).resolve(reference);
    const plan = await planInstall(store, manifest, {
      toolspecs: config.registryToolspecs,
      useImage: invocation.values.image === true,
      baseUrl: invocation.values["base-url"] as string | undefined,
    });
    if (verb === "update" && plan.upToDate) {
      console.log(`${manifest.name} is up to date (${plan.current!.installed!.reference})`);
      return 0;
    }
    if (plan.needsConsent) {
      console.log(plan.summary.join("\n"));
      if (plan.current) console.log("The grants changed since you consented: they need your consent again.");
    }
    if (!(await consented(invocation, plan, verb === "install" ? "Install" : "Update"))) {
      await audit("deny", { reason: "consent refused" });
      console.error(`gigmcp registry ${verb}: not ${verb === "install" ? "installed" : "updated"}: consent refused`);
      return 1;
    }
    const server = await install(plan, { store, imageStore: imageStoreOf(config.dataDir) });
    await audit("allow", { server: server.name, digest: server.installed!.digest, entrypointSha256: server.installed!.entrypointSha256 });
    const runs = server.installed!.entrypointSha256 ? `${server.installed!.image}@${server.installed!.digest}` : "on the toolspec engine";
    output(invocation, { name: server.name, ...server.installed }, () => `${verb === "install" ? "installed" : "updated"} ${server.installed!.reference} (${runs})`);
    return 0;
  } catch (error) {
    if (error instanceof RegistryError || error instanceof OciError) await audit("deny", { reason: error.message });
    throw error;
  }
}

export const registryCommands: CommandGroup = {
  name: "registry",
  summary: "the signed server registry (GIG_REGISTRY_URL)",
  commands: [
    {
      name: "registry search",
      summary: "List registry servers, or those whose name, description or category contains TEXT.",
      usage: "registry search [TEXT] [--json]",
      options: { ...json },
      run: reported("registry search", async (invocation) => {
        if (invocation.positionals.length > 1) throw new UsageError("expected at most one search TEXT (quote it if it has spaces)");
        const found = (await openRegistry(loadConfig()).search(invocation.positionals[0])).map(catalogEntry);
        output(invocation, found, () =>
          table(
            ["NAME", "VERSION", "TIER", "CATEGORY", "DESCRIPTION", "EGRESS", "CREDENTIALS"],
            found.map((entry) => [
              entry.name,
              entry.version,
              entry.tier,
              entry.category ?? "-",
              entry.description ?? entry.displayName ?? "-",
              entry.egress.join(", ") || "-",
              entry.credentials.map((credential) => credential.id).join(" ") || "-",
            ]),
          ),
        );
      }),
    },
    {
      name: "registry show",
      summary: "Show what installing a server would grant: tier, hosts, credentials, tools, image.",
      usage: "registry show NAME[@VERSION]|sha256:DIGEST [--json]",
      options: { ...json },
      run: reported("registry show", async (invocation) => {
        const [reference] = requirePositionals(invocation, ["NAME[@VERSION]|sha256:DIGEST"]);
        const manifest = await openRegistry(loadConfig()).resolve(reference!);
        output(invocation, { manifest, consentHash: consentHash(manifest), installProblem: installProblem(manifest) ?? null }, () => showText(manifest));
      }),
    },
    {
      name: "registry install",
      summary: "Verify, pull and register a server from the registry, after consent to its grants.",
      usage: "registry install NAME[@VERSION]|sha256:DIGEST [--yes] [--image] [--base-url https://HOST] [--json]",
      options: consentOptions,
      details:
        "Shows the server's tier, egress hosts and credentials, and asks for consent (--yes for scripts).\n" +
        "The signed index is verified before it is read; the image is pulled by its pinned digest, every\n" +
        "manifest and blob is checked against its digest, and only the entrypoint is kept.\n" +
        "A toolpack server whose toolspec is in GIG_REGISTRY_TOOLSPECS runs on the gateway's toolspec engine\n" +
        "instead (no image is pulled; --image pulls and runs the image). --base-url sets a tenant's own host\n" +
        "(e.g. https://acme.zendesk.com), accepted only inside the server's egress.",
      run: reported("registry install", async (invocation) => {
        const [reference] = requirePositionals(invocation, ["NAME[@VERSION]|sha256:DIGEST"]);
        return withAuditingStore((store) => installWithAudit(invocation, store, reference!, "install"));
      }),
    },
    {
      name: "registry update",
      summary: "Move an installed server to the registry's latest version; changed grants need consent again.",
      usage: "registry update NAME [--yes] [--image] [--base-url https://HOST] [--json]",
      options: consentOptions,
      run: reported("registry update", async (invocation) => {
        const [name] = requirePositionals(invocation, ["NAME"]);
        return withAuditingStore((store) => installWithAudit(invocation, store, name!, "update"));
      }),
    },
    {
      name: "registry uninstall",
      summary: "Remove an installed server, from every profile, and its entrypoint.",
      usage: "registry uninstall NAME",
      run: reported("registry uninstall", async (invocation) => {
        const [name] = requirePositionals(invocation, ["NAME"]);
        await withAuditingStore(async (store) => {
          const server = await uninstall(store, name!);
          await store.audit.record({ action: "registry.uninstall", decision: "allow", actor: "cli", detail: { reference: server.installed!.reference } });
        });
        console.log(`uninstalled ${name}`);
      }),
    },
    {
      name: "registry lint",
      summary: "Check manifests (*.yaml) and toolspecs (*.toolspec.yaml) in files or folders; prints N ok or one line per problem.",
      usage: "registry lint PATH… [--denylist FILE]…",
      options: { denylist: { type: "string", multiple: true } },
      details:
        "Files are laid out as in the registry: manifests/<name>/<version>.yaml beside <version>.toolspec.yaml.\n" +
        "Egress hosts are checked against Gig'MCP's built-in denylist, GIG_EGRESS_DENYLIST, and each\n" +
        "--denylist FILE (one domain per line, # comments). Problems print as `file: field.path: reason`; exit 1.",
      run: reported("registry lint", async (invocation) => {
        if (invocation.positionals.length === 0) throw new UsageError("give at least one file or folder to lint");
        const extra = [loadConfig().egressDenylistFile, ...((invocation.values.denylist as string[] | undefined) ?? [])].filter((file) => file !== undefined);
        const denylist = loadDenylist([builtinDenylist, ...extra.map(readDenylist)].join("\n"));
        const result = lintPaths(invocation.positionals, { denylist });
        if (result.problems.length === 0) {
          console.log(`${result.checked} ok`);
          return 0;
        }
        for (const found of result.problems) console.log(formatLintProblem(found));
        const files = new Set(result.problems.map((found) => found.file)).size;
        console.error(`${result.problems.length} problem${result.problems.length === 1 ? "" : "s"} in ${files} of ${result.checked} files`);
        return 1;
      }),
    },
  ],
};
