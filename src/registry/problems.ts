/**
 * A problem found in a registry document, located by its field path
 * (`tools[3].params[0].name`), so lint output points at the exact field.
 */
import type * as v from "valibot";

export type FieldPath = (string | number)[];

export interface Problem {
  path: FieldPath;
  message: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `tools[3].name`; keys that are not identifiers are quoted: `versions["0.1.0"]`. Empty path: `(document)`. */
export function formatPath(path: FieldPath): string {
  if (path.length === 0) return "(document)";
  return path
    .map((key, position) => {
      if (typeof key === "number") return `[${key}]`;
      if (!IDENTIFIER.test(key)) return `[${JSON.stringify(key)}]`;
      return position === 0 ? key : `.${key}`;
    })
    .join("");
}

export function problem(path: FieldPath, message: string): Problem {
  return { path, message };
}

/** Valibot issues as problems, with messages that say what the field needs. */
export function issueProblems(issues: readonly v.BaseIssue<unknown>[]): Problem[] {
  return issues.map((issue) => ({
    path: (issue.path ?? []).map((item) => item.key as string | number),
    message: issueMessage(issue),
  }));
}

function issueMessage(issue: v.BaseIssue<unknown>): string {
  if (issue.type === "strict_object" || issue.type === "object") {
    if (issue.expected === "never") return "unknown field: remove it (or check its spelling)";
    if (issue.received === "undefined") return "required field is missing";
  }
  // A custom message given in the schema says more than the generic one.
  if (!issue.message.startsWith("Invalid ")) return issue.message;
  if (issue.expected === "string" && typeof issue.input === "boolean") {
    return `expected a string, got the boolean ${issue.input}: YAML 1.1 reads unquoted on, off, yes, no, y, n, true and false as booleans, so quote the value`;
  }
  return `expected ${issue.expected ?? "something else"}, got ${issue.received}`;
}

/** The registry cannot be used as asked (unverifiable index, unknown reference…); the message says what to do. */
export class RegistryError extends Error {
  override name = "RegistryError";
}
