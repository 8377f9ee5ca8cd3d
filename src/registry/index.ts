/**
 * The gigmcp registry: manifests and toolspecs (strict parsing and lint),
 * the signed index (signature before parsing, rollback and freeze checks,
 * references), and what installing a server asks the operator to accept.
 */
export { catalogEntry, installProblem, type CatalogEntry } from "./catalog.ts";
export { consentHash, consentSummary } from "./consent.ts";
export { egressAllows, egressForProxy } from "./egress.ts";
export { MAX_INDEX_BYTES, openRegistry, parseIndex, parseReference, verifyIndexSignature } from "./index-client.ts";
export type { Reference, Registry, RegistryOptions, RegistryServer, RegistrySettings, VerifiedIndex } from "./index-client.ts";
export { formatLintProblem, lintPaths, type LintProblem, type LintResult } from "./lint.ts";
export { assertInstallable, manifestRef, parseManifest, type Manifest, type ManifestCredential } from "./manifest.ts";
export { formatPath, RegistryError, type FieldPath, type Problem } from "./problems.ts";
export { parseToolspec, toolspecManifestProblems, type Toolspec, type ToolspecTool } from "./toolspec.ts";
export { loadYaml, type LoadedYaml } from "./yaml.ts";
export { imageStoreOf, install, planInstall, uninstall, type InstallOptions, type InstallPlan, type PlanOptions } from "./installer.ts";
