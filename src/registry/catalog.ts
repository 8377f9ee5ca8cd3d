/**
 * A registry server as catalogs show it (`gigmcp registry search` and the
 * REST catalog): what it is, what installing it would grant, and whether it
 * can be installed at all.
 */
import { egressText } from "./consent.ts";
import { assertInstallable, type Manifest } from "./manifest.ts";
import { RegistryError } from "./problems.ts";

export interface CatalogEntry {
  name: string;
  version: string;
  displayName: string | null;
  description: string | null;
  category: string | null;
  tier: Manifest["tier"];
  /** Egress hosts in words (`*.x` reads "any host under x"). */
  egress: string[];
  credentials: { id: string; type: string; vendor: string | null }[];
  tools: number;
  installable: boolean;
  /** Why it cannot be installed, when it cannot. */
  problem: string | null;
}

export function catalogEntry(manifest: Manifest): CatalogEntry {
  const problem = installProblem(manifest) ?? null;
  return {
    name: manifest.name,
    version: manifest.version,
    displayName: manifest.displayName ?? null,
    description: manifest.description ?? null,
    category: manifest.category ?? null,
    tier: manifest.tier,
    egress: manifest.entitlements.egress.map(egressText),
    credentials: (manifest.credentials ?? []).map(({ id, type, vendor }) => ({ id, type, vendor: vendor ?? null })),
    tools: manifest.tools.length,
    installable: problem === null,
    problem,
  };
}

/** Why a manifest cannot be installed (see assertInstallable), or undefined if it can. */
export function installProblem(manifest: Manifest): string | undefined {
  try {
    assertInstallable(manifest);
    return undefined;
  } catch (error) {
    if (error instanceof RegistryError) return error.message;
    throw error;
  }
}
