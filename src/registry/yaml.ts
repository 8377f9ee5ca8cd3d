/**
 * YAML as the registry reads it: YAML 1.1, so an unquoted `on`, `no` or `y`
 * is a boolean and fails where a string belongs instead of being quietly
 * turned into text. Duplicate keys, aliases and merge keys are refused: a
 * manifest is small, and every value in it should be written out once.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from "yaml";
import { problem, type FieldPath, type Problem } from "./problems.ts";

export interface LoadedYaml {
  value: unknown;
  problems: Problem[];
  /** The 1-based line where the value at `path` starts, if it exists. */
  lineOf(path: FieldPath): number | undefined;
}

export function loadYaml(text: string): LoadedYaml {
  const lines = new LineCounter();
  // Duplicates are found below, where their field path is known.
  const document = parseDocument(text, { version: "1.1", uniqueKeys: false, prettyErrors: false, lineCounter: lines });
  const problems: Problem[] = [];
  const starts = new Map<string, number>();
  const lineAt = (offset: number) => lines.linePos(offset).line;
  for (const error of [...document.errors, ...document.warnings]) {
    problems.push(problem([], `line ${lineAt(error.pos[0])}: ${error.message}`));
  }

  const build = (node: unknown, path: FieldPath): unknown => {
    if (node === null || node === undefined) return null;
    const at = (node as Node).range?.[0];
    if (at !== undefined) starts.set(JSON.stringify(path), lineAt(at));
    if (isAlias(node)) {
      problems.push(problem(path, `line ${lineAt(node.range![0])}: aliases (*${node.source}) are not allowed: write the value out`));
      return null;
    }
    if (isScalar(node)) return node.value;
    if (isSeq(node)) return node.items.map((item, index) => build(item, [...path, index]));
    if (isMap(node)) {
      const entries: [string, unknown][] = [];
      const seen = new Set<string>();
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? pair.key.value : undefined;
        if (typeof key !== "string") {
          const source = isScalar(pair.key) ? pair.key.source : undefined;
          const line = (pair.key as Node | null)?.range ? ` (line ${lineAt((pair.key as Node).range![0])})` : "";
          problems.push(
            problem(
              path,
              source === "<<"
                ? `merge keys (<<) are not allowed${line}: write the fields out`
                : `key ${JSON.stringify(source ?? String(key))} is not a string${line}: YAML 1.1 reads unquoted on, off, yes, no, y, n and numbers as other types, so quote it`,
            ),
          );
          continue;
        }
        if (seen.has(key)) {
          problems.push(problem([...path, key], `duplicate key (line ${lineAt((pair.key as Node).range![0])}): each field may appear once`));
          continue;
        }
        seen.add(key);
        entries.push([key, build(pair.value, [...path, key])]);
      }
      // fromEntries defines own properties, so a key named __proto__ stays a plain field.
      return Object.fromEntries(entries);
    }
    return null;
  };

  const value = problems.length > 0 ? null : build(document.contents, []);
  return { value, problems, lineOf: (path) => starts.get(JSON.stringify(path)) };
}
