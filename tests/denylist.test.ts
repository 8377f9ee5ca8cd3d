/**
 * The shipped exfiltration denylist covers every entry of the reference
 * catalog's list (read from ../shared at test time, never copied here).
 */
import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./helpers/gateway.ts";

const SHIPPED = join(ROOT, "src/proxy/exfil-denylist.txt");
const CATALOG = join(ROOT, "../shared/registry/catalog/denylist/exfil-domains.txt");

function entries(text: string): string[] {
  return text.split("\n").map((line) => line.trim().toLowerCase()).filter((line) => line !== "" && !line.startsWith("#"));
}

test("every domain of the catalog's exfiltration denylist is denied by ours (itself or a parent)", () => {
  expect(existsSync(CATALOG)).toBe(true);
  const ours = entries(readFileSync(SHIPPED, "utf8"));
  const theirs = entries(readFileSync(CATALOG, "utf8"));
  expect(theirs.length).toBeGreaterThan(10);
  const uncovered = theirs.filter((domain) => !ours.some((entry) => domain === entry || domain.endsWith(`.${entry}`)));
  expect(uncovered).toEqual([]);
});

test("our list is well-formed: lowercase domain names, no duplicates", () => {
  const ours = entries(readFileSync(SHIPPED, "utf8"));
  for (const entry of ours) expect(entry).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/);
  expect(new Set(ours).size).toBe(ours.length);
});
