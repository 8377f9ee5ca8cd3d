/**
 * Installing a server from the signed registry: what the operator is asked to
 * consent to, the daemonless pull of its pinned image (only the entrypoint is
 * kept), and the server definition that runs it in a sandbox with the
 * manifest's egress allowlist and credential placeholders.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log/index.ts";
import { isLoopbackHost, pullEntrypoint } from "../oci/index.ts";
import type { CredentialSpec, Server, ServerSpec, Store } from "../store/index.ts";
import { consentHash, consentSummary } from "./consent.ts";
import { egressAllows, egressForProxy } from "./egress.ts";
import { assertInstallable, manifestRef, type Manifest, type ManifestCredential } from "./manifest.ts";
import { formatPath, RegistryError } from "./problems.ts";
import { parseToolspec, toolspecManifestProblems, type Toolspec } from "./toolspec.ts";
import { loadYaml } from "./yaml.ts";

export interface InstallPlan {
  manifest: Manifest;
  /** Set when the gateway's toolspec engine serves the server (a toolpack with its toolspec available); else the image runs. */
  toolspec: Toolspec | undefined;
  /** The tenant host replacing the toolspec's base URL (e.g. https://acme.zendesk.com), checked against the egress. */
  baseUrl: string | undefined;
  /** Lines shown to the operator before consenting. */
  summary: string[];
  consentHash: string;
  /** The installed server of that name, if any. */
  current: Server | undefined;
  /** Whether the operator must consent: a new install, or a change of digest, tier, egress, credentials or tools. */
  needsConsent: boolean;
  /** Same version and digest as installed: nothing to do. */
  upToDate: boolean;
}

export interface PlanOptions {
  /** Folder path or URL with <name>/<version>.toolspec.yaml (GIG_REGISTRY_TOOLSPECS). */
  toolspecs?: string;
  /** Run the pulled image even when a toolspec is available. */
  useImage?: boolean;
  baseUrl?: string;
}

export async function planInstall(store: Store, manifest: Manifest, options: PlanOptions = {}): Promise<InstallPlan> {
  const current = await store.servers.get(manifest.name).catch(() => undefined);
  const toolspec = !options.useImage && manifest.image.builder === "toolpack" && options.toolspecs ? await loadToolspec(options.toolspecs, manifest) : undefined;
  // The engine needs no image, so a toolpack with a placeholder digest is still installable through it.
  if (!toolspec) assertInstallable(manifest);
  if (options.baseUrl !== undefined && !toolspec) throw new RegistryError("--base-url applies only to servers run by the toolspec engine");
  // An update keeps the tenant host chosen at install (checked again against the new egress).
  const wantedBaseUrl = options.baseUrl ?? (toolspec ? current?.env.TOOLSPEC_BASE_URL : undefined);
  const baseUrl = wantedBaseUrl === undefined ? undefined : checkedBaseUrl(wantedBaseUrl, manifest);
  if (current && !current.installed) {
    throw new RegistryError(`a server named ${manifest.name} was added by hand; remove it first (gigmcp server remove ${manifest.name})`);
  }
  const hash = consentHash(manifest);
  return {
    manifest,
    toolspec,
    baseUrl,
    summary: [...consentSummary(manifest), toolspec ? `Runs on: the gateway's toolspec engine (${toolspec.tools.length} tools declared, base URL ${baseUrl ?? toolspec.baseUrl})` : `Runs: the image ${manifest.image.ref}@${manifest.image.digest}`],
    consentHash: hash,
    current,
    needsConsent: current?.installed?.consentHash !== hash,
    upToDate: current?.installed?.reference === manifestRef(manifest) && current.installed.digest === manifest.image.digest,
  };
}

export interface InstallOptions {
  store: Store;
  /** Where pulled blobs and entrypoints are kept (content-addressed). */
  imageStore: string;
  log?: Logger;
}

/** Pulls the pinned image (or prepares the toolspec engine) and creates or updates the server; memberships of an updated server are kept. */
export async function install(plan: InstallPlan, options: InstallOptions): Promise<Server> {
  const { manifest } = plan;
  if (plan.toolspec) {
    const server = await options.store.servers.upsert(toolspecServer(plan, plan.toolspec));
    if (plan.current?.installed?.entrypointSha256) await removeUnusedEntrypoint(options.store, plan.current.command);
    return server;
  }
  const pulled = await pullEntrypoint({
    image: manifest.image.ref,
    digest: manifest.image.digest,
    entrypoint: manifest.image.entrypoint,
    storeDir: options.imageStore,
    // Plain HTTP only for a registry on this machine (a lab or test registry); TLS everywhere else.
    plainHttp: isLoopbackHost(new URL(`http://${manifest.image.ref.split("/")[0]}`).hostname),
    log: options.log,
  });
  const spec: ServerSpec = {
    name: manifest.name,
    kind: "stdio",
    command: pulled.path,
    args: [],
    env: {},
    egress: egressForProxy(manifest),
    roPaths: [],
    tier: manifest.tier,
    timeoutMs: plan.current?.timeoutMs ?? null,
    limits: plan.current?.limits ?? null,
    credentials: (manifest.credentials ?? []).map(credentialSpec),
    installed: {
      reference: manifestRef(manifest),
      image: manifest.image.ref,
      digest: manifest.image.digest,
      entrypoint: manifest.image.entrypoint,
      entrypointSha256: pulled.sha256,
      consentHash: plan.consentHash,
    },
  };
  const server = await options.store.servers.upsert(spec);
  if (plan.current?.installed?.entrypointSha256 && plan.current.command !== pulled.path) await removeUnusedEntrypoint(options.store, plan.current.command);
  return server;
}

/** Removes an installed server, and its entrypoint file once no server uses it. */
export async function uninstall(store: Store, name: string): Promise<Server> {
  const server = await store.servers.get(name);
  if (!server.installed) throw new RegistryError(`${name} was not installed from the registry; remove it with gigmcp server remove ${name}`);
  await store.servers.remove(name);
  if (server.installed.entrypointSha256) await removeUnusedEntrypoint(store, server.command);
  return server;
}

async function removeUnusedEntrypoint(store: Store, path: string): Promise<void> {
  const stillUsed = (await store.servers.list()).some((server) => server.command === path);
  if (!stillUsed && existsSync(path)) rmSync(path, { force: true });
}

/**
 * Sealed credentials are injected by the proxy into the manifest's header; the
 * server finds its placeholder in GIG_PLACEHOLDER_<ID>. Entrusted ones arrive
 * as the manifest's variable.
 */
function credentialSpec(credential: ManifestCredential): CredentialSpec {
  const inject = credential.inject as { header?: string; format?: string; env?: string };
  if (inject.env) return { id: credential.id, type: credential.type as CredentialSpec["type"], env: inject.env, ...connectionFields(credential) };
  return {
    id: credential.id,
    type: credential.type as CredentialSpec["type"],
    header: inject.header,
    format: inject.format,
    env: `GIG_PLACEHOLDER_${credential.id.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`,
    ...connectionFields(credential),
  };
}

/** An oauth2 credential's vendor and scopes: what a tenant's connection to that vendor must supply. */
function connectionFields(credential: ManifestCredential): Pick<CredentialSpec, "vendor" | "scopes"> {
  if (credential.type !== "oauth2") return {};
  return { ...(credential.vendor && { vendor: credential.vendor }), ...(credential.scopes?.length && { scopes: [...credential.scopes] }) };
}

/**
 * A toolpack served by the bundled toolspec engine. Sealed: the proxy puts the
 * secret into the manifest's header, the engine sends the placeholder there.
 * Entrusted: the engine gets the secret and applies the toolspec's auth.
 */
function toolspecServer(plan: InstallPlan, toolspec: Toolspec): ServerSpec {
  const { manifest } = plan;
  const credential = manifest.credentials?.[0];
  const inject = credential?.inject as { header?: string; format?: string; env?: string } | undefined;
  const auth = manifest.tier === "sealed" ? (inject?.header ? { header: inject.header, format: inject.format! } : undefined) : toolspec.auth;
  const env: Record<string, string> = {
    TOOLSPEC: JSON.stringify(toolspec),
    TOOLSPEC_TOOLS: manifest.tools.filter((tool) => tool.default).map((tool) => tool.name).join(","),
    ...(plan.baseUrl ? { TOOLSPEC_BASE_URL: plan.baseUrl } : {}),
    ...(credential && auth ? { TOOLSPEC_AUTH_HEADER: auth.header, TOOLSPEC_AUTH_FORMAT: auth.format } : {}),
  };
  const credentials: CredentialSpec[] = credential
    ? [
        manifest.tier === "sealed"
          ? { id: credential.id, type: credential.type as CredentialSpec["type"], header: inject?.header, format: inject?.format, env: "TOOLSPEC_AUTH_TOKEN", ...connectionFields(credential) }
          : { id: credential.id, type: credential.type as CredentialSpec["type"], env: "TOOLSPEC_AUTH_TOKEN", ...connectionFields(credential) },
      ]
    : [];
  return {
    name: manifest.name,
    kind: "builtin",
    command: "toolspec",
    args: [],
    env,
    egress: egressForProxy(manifest),
    roPaths: [],
    tier: manifest.tier,
    timeoutMs: plan.current?.timeoutMs ?? null,
    limits: plan.current?.limits ?? null,
    credentials,
    installed: { reference: manifestRef(manifest), image: manifest.image.ref, digest: manifest.image.digest, consentHash: plan.consentHash },
  };
}

/** The toolspec of `manifest` from the registry's toolspec folder or URL, checked against the signed manifest. */
async function loadToolspec(source: string, manifest: Manifest): Promise<Toolspec> {
  const relative = `${manifest.name}/${manifest.version}.toolspec.yaml`;
  const location = /^https?:\/\//.test(source) ? `${source.replace(/\/$/, "")}/${relative}` : join(source, relative);
  let text: string;
  try {
    text = location.startsWith("http") ? await fetchText(location) : readFileSync(location, "utf8");
  } catch (error) {
    throw new RegistryError(`cannot read the toolspec ${location}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = loadYaml(text);
  const result = parsed.problems.length > 0 ? { problems: parsed.problems } : parseToolspec(parsed.value);
  const problems = "problems" in result ? result.problems : toolspecManifestProblems(result.toolspec, manifest);
  if ("problems" in result || problems.length > 0) {
    throw new RegistryError(`the toolspec ${location} is not valid: ${problems.slice(0, 5).map((found) => `${formatPath(found.path)}: ${found.message}`).join("; ")}`);
  }
  return result.toolspec;
}

async function fetchText(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(30_000), redirect: "error" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.text();
}

/** A tenant's own host for a toolspec whose host depends on the tenant; it must be inside the manifest's egress. */
function checkedBaseUrl(text: string, manifest: Manifest): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RegistryError(`--base-url ${text} is not a URL; give https://<host>`);
  }
  if (url.protocol !== "https:" || url.port !== "" || url.pathname !== "/" || url.search || url.hash || url.username) {
    throw new RegistryError(`--base-url must be exactly https://<host> (no port, path or query), not ${text}`);
  }
  if (!egressAllows(manifest, url.hostname)) {
    throw new RegistryError(`--base-url host ${url.hostname} is outside ${manifest.name}'s egress (${manifest.entitlements.egress.join(", ")})`);
  }
  return url.origin;
}

/** The content store of pulled images, inside the (private) data dir. */
export function imageStoreOf(dataDir: string): string {
  return join(dataDir, "images");
}
