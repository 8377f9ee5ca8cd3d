/**
 * `gigmcp registry lint`: checks manifests and toolspecs laid out as in the
 * registry (`manifests/<name>/<version>.yaml` beside
 * `<version>.toolspec.yaml`), each alone and against its pair, and every
 * egress host against the denylist.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { deniedDomain } from "./egress.ts";
import { checkManifest, type Manifest } from "./manifest.ts";
import { formatPath, problem, type FieldPath, type Problem } from "./problems.ts";
import { checkToolspec, toolspecManifestProblems, type Toolspec } from "./toolspec.ts";
import { loadYaml } from "./yaml.ts";

const TOOLSPEC_SUFFIX = ".toolspec.yaml";
const MANIFEST_SUFFIX = ".yaml";

export interface LintProblem extends Problem {
  file: string;
}

export interface LintResult {
  /** How many files were checked. */
  checked: number;
  problems: LintProblem[];
}

/** `file: field.path: reason`, one line. */
export function formatLintProblem(found: LintProblem): string {
  return `${found.file}: ${formatPath(found.path)}: ${found.message}`;
}

/** Lints every manifest and toolspec in `paths` (files, or folders searched recursively). */
export function lintPaths(paths: string[], options: { denylist: string[] }): LintResult {
  const problems: LintProblem[] = [];
  const files = new Map<string, string>();
  for (const path of paths) {
    if (!existsSync(path)) {
      problems.push({ file: path, ...problem([], "no such file or directory") });
    } else if (statSync(path).isDirectory()) {
      for (const file of yamlFilesUnder(path)) files.set(resolve(file), file);
    } else if (path.endsWith(MANIFEST_SUFFIX)) {
      files.set(resolve(path), path);
    } else {
      problems.push({ file: path, ...problem([], `not a manifest (*${MANIFEST_SUFFIX}) or a toolspec (*${TOOLSPEC_SUFFIX})`) });
    }
  }
  if (paths.length > 0 && files.size === 0 && problems.length === 0) {
    problems.push({ file: paths.join(" "), ...problem([], `no *${MANIFEST_SUFFIX} files found`) });
  }

  const manifests = new ManifestCache();
  for (const [absolute, shown] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    const found = absolute.endsWith(TOOLSPEC_SUFFIX)
      ? lintToolspec(absolute, manifests, files)
      : lintManifest(absolute, manifests, options.denylist);
    problems.push(...found.map((item) => ({ file: shown, ...item })));
  }
  return { checked: files.size, problems };
}

/** `*.yaml` files below `folder`; symlinks and hidden entries are skipped, as the registry's CI does. */
function yamlFilesUnder(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true })
    .filter((entry) => !entry.name.startsWith(".") && !entry.isSymbolicLink())
    .flatMap((entry) => {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) return yamlFilesUnder(path);
      return entry.isFile() && entry.name.endsWith(MANIFEST_SUFFIX) ? [path] : [];
    });
}

/** A checked document: its problems, its value if the structure is sound enough for further checks, and where its fields are. */
interface Checked<T> {
  value: T | undefined;
  problems: Problem[];
  lineOf(path: FieldPath): number | undefined;
}

/** Each manifest is read once, whether linted itself or as a toolspec's pair. */
class ManifestCache {
  private readonly checked = new Map<string, Checked<Manifest>>();

  get(file: string): Checked<Manifest> {
    let entry = this.checked.get(file);
    if (!entry) {
      entry = readDocument(file, (value) => {
        const { manifest, problems } = checkManifest(value);
        return { value: manifest, problems };
      });
      this.checked.set(file, entry);
    }
    return entry;
  }
}

function readDocument<T>(file: string, check: (value: unknown) => { value: T | undefined; problems: Problem[] }): Checked<T> {
  const nowhere = () => undefined;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    return { value: undefined, problems: [problem([], `cannot read the file: ${(error as Error).message}`)], lineOf: nowhere };
  }
  const loaded = loadYaml(text);
  if (loaded.problems.length > 0) return { value: undefined, problems: loaded.problems, lineOf: nowhere };
  return { ...check(loaded.value), lineOf: loaded.lineOf };
}

/** Adds to each problem the line of its field, or of the nearest parent that exists (a missing field has none). */
function withLines(problems: Problem[], lineOf: (path: FieldPath) => number | undefined): Problem[] {
  return problems.map((found) => {
    for (let length = found.path.length; length > 0; length--) {
      const line = lineOf(found.path.slice(0, length));
      if (line !== undefined) return { ...found, message: `${found.message} (line ${line})` };
    }
    return found;
  });
}

/** The file's directory and stem must repeat its name and version: manifests/<name>/<version>.yaml. */
function locationProblems(file: string, suffix: string, document: { name: string; version: string }): Problem[] {
  const problems: Problem[] = [];
  const folder = basename(dirname(file));
  const stem = basename(file).slice(0, -suffix.length);
  if (document.name !== folder) problems.push(problem(["name"], `${document.name} does not match its folder ${folder}: the file belongs in manifests/${document.name}/`));
  if (document.version !== stem) problems.push(problem(["version"], `${document.version} does not match the file name ${basename(file)}: it should be ${document.version}${suffix}`));
  return problems;
}

function lintManifest(file: string, manifests: ManifestCache, denylist: string[]): Problem[] {
  const { value: manifest, problems, lineOf } = manifests.get(file);
  if (!manifest) return withLines(problems, lineOf);
  const found = [...problems, ...locationProblems(file, MANIFEST_SUFFIX, manifest)];
  manifest.entitlements.egress.forEach((entry, index) => {
    const denied = deniedDomain(entry, denylist);
    if (denied) found.push(problem(["entitlements", "egress", index], `${entry} reaches ${denied}, which is on the egress denylist: remove it`));
  });
  const toolspec = file.slice(0, -MANIFEST_SUFFIX.length) + TOOLSPEC_SUFFIX;
  if (manifest.image.builder === "toolpack" && !existsSync(toolspec)) {
    found.push(problem(["image", "builder"], `a toolpack server needs its toolspec ${basename(toolspec)} beside the manifest`));
  }
  return withLines(found, lineOf);
}

function lintToolspec(file: string, manifests: ManifestCache, linted: Map<string, string>): Problem[] {
  const { value: spec, problems, lineOf } = readDocument(file, (value) => {
    const { toolspec, problems } = checkToolspec(value);
    return { value: toolspec, problems };
  });
  if (!spec) return withLines(problems, lineOf);
  return withLines([...problems, ...locationProblems(file, TOOLSPEC_SUFFIX, spec), ...pairProblems(file, spec, manifests, linted)], lineOf);
}

/** The toolspec against its manifest, `<version>.yaml` in the same folder. */
function pairProblems(file: string, spec: Toolspec, manifests: ManifestCache, linted: Map<string, string>): Problem[] {
  const manifestFile = file.slice(0, -TOOLSPEC_SUFFIX.length) + MANIFEST_SUFFIX;
  if (!existsSync(manifestFile) || lstatSync(manifestFile).isSymbolicLink()) {
    return [problem([], `no manifest ${basename(manifestFile)} beside this toolspec: every toolspec belongs to one manifest`)];
  }
  const manifest = manifests.get(manifestFile).value;
  if (!manifest) {
    // Linted too, its own problems are listed; otherwise say why the cross-checks were skipped.
    return linted.has(manifestFile) ? [] : [problem([], `its manifest ${manifestFile} has problems (lint it): checks against it were skipped`)];
  }
  if (manifest.image.builder !== "toolpack") {
    return [problem([], `its manifest's image.builder is ${manifest.image.builder ?? "not set"}, not toolpack: the toolspec would never be used`)];
  }
  return toolspecManifestProblems(spec, manifest);
}
