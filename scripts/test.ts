/**
 * Runs every test suite and prints the total over all of them as the last
 * line: "N passed, N failed" (also written to tests/artifacts/summary.txt for
 * .ci/run). A suite that cannot run at all counts as one failure.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const ARTIFACTS = join(ROOT, "tests/artifacts");

interface Suite {
  name: string;
  /** Test files or directories handed to `bun test`. */
  paths: string[];
  env?: Record<string, string>;
}

const SUITES: Suite[] = [{ name: "all", paths: ["tests"] }];

interface Outcome {
  passed: number;
  failed: number;
}

async function runSuite(suite: Suite): Promise<Outcome> {
  const report = join(ARTIFACTS, `junit-${suite.name}.xml`);
  rmSync(report, { force: true });
  const child = Bun.spawn(
    [process.execPath, "test", "--timeout", "120000", "--reporter=junit", `--reporter-outfile=${report}`, ...suite.paths],
    { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, ...suite.env } },
  );
  const code = await child.exited;
  let xml: string;
  try {
    xml = readFileSync(report, "utf8");
  } catch {
    console.error(`suite ${suite.name}: no report written (exit code ${code})`);
    return { passed: 0, failed: 1 };
  }
  const totals = /<testsuites[^>]*\btests="(\d+)"[^>]*\bfailures="(\d+)"(?:[^>]*\bskipped="(\d+)")?/.exec(xml);
  if (!totals) return { passed: 0, failed: 1 };
  const [tests, failures, skipped] = [Number(totals[1]), Number(totals[2]), Number(totals[3] ?? 0)];
  // A non-zero exit with no failing test (an error between tests) still fails the suite.
  const extra = code !== 0 && failures === 0 ? 1 : 0;
  return { passed: tests - failures - skipped, failed: failures + extra };
}

mkdirSync(ARTIFACTS, { recursive: true });
let passed = 0;
let failed = 0;
for (const suite of SUITES) {
  const outcome = await runSuite(suite);
  console.log(`suite ${suite.name}: ${outcome.passed} passed, ${outcome.failed} failed`);
  passed += outcome.passed;
  failed += outcome.failed;
}
const summary = `${passed} passed, ${failed} failed`;
writeFileSync(join(ARTIFACTS, "summary.txt"), `${summary}\n`);
console.log(summary);
process.exitCode = failed === 0 ? 0 : 1;
