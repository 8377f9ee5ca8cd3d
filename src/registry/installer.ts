/**
 * Installing a server from the signed registry: what the operator is asked to
 * consent to, the daemonless pull of its pinned image (only the entrypoint is
 * kept), and the server definition that runs it in a sandbox with the
 * manifest's egress allowlist and credential placeholders.
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log/index.ts";
import { pullEntrypoint } from "../oci/index.ts";
import type { CredentialSpec, Server, ServerSpec, Store } from "../store/index.ts";
import { consentHash, consentSummary } from "./consent.ts";
import { egressForProxy } from "./egress.ts";
import { assertInstallable, manifestRef, type Manifest, type ManifestCredential } from "./manifest.ts";
import { RegistryError } from "./problems.ts";

export interface InstallPlan {
  manifest: Manifest;
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

export async function planInstall(store: Store, manifest: Manifest): Promise<InstallPlan> {
  assertInstallable(manifest);
  const current = await store.servers.get(manifest.name).catch(() => undefined);
  if (current && !current.installed) {
    throw new RegistryError(`a server named ${manifest.name} was added by hand; remove it first (gigmcp server remove ${manifest.name})`);
  }
  const hash = consentHash(manifest);
  return {
    manifest,
    summary: consentSummary(manifest),
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

/** Pulls the pinned image and creates or updates the server; memberships of an updated server are kept. */
export async function install(plan: InstallPlan, options: InstallOptions): Promise<Server> {
  const { manifest } = plan;
  const registryHost = manifest.image.ref.split("/")[0]!;
  const pulled = await pullEntrypoint({
    image: manifest.image.ref,
    digest: manifest.image.digest,
    entrypoint: manifest.image.entrypoint,
    storeDir: options.imageStore,
    // Plain HTTP only for a registry on this machine (a lab or test registry); TLS everywhere else.
    plainHttp: /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(registryHost),
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
  if (plan.current && plan.current.command !== pulled.path) await removeUnusedEntrypoint(options.store, plan.current.command);
  return server;
}

/** Removes an installed server, and its entrypoint file once no server uses it. */
export async function uninstall(store: Store, name: string): Promise<Server> {
  const server = await store.servers.get(name);
  if (!server.installed) throw new RegistryError(`${name} was not installed from the registry; remove it with gigmcp server remove ${name}`);
  await store.servers.remove(name);
  await removeUnusedEntrypoint(store, server.command);
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
  if (inject.env) return { id: credential.id, type: credential.type as CredentialSpec["type"], env: inject.env };
  return {
    id: credential.id,
    type: credential.type as CredentialSpec["type"],
    header: inject.header,
    format: inject.format,
    env: `GIG_PLACEHOLDER_${credential.id.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`,
  };
}

/** The content store of pulled images, inside the (private) data dir. */
export function imageStoreOf(dataDir: string): string {
  return join(dataDir, "images");
}
