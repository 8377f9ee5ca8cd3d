/**
 * Runs every test suite and prints the total over all of them as the last
 * line: "N passed, N failed" (also written to tests/artifacts/summary.txt for
 * .ci/run). A suite that cannot run at all counts as one failure.
 */
import { chmodSync, mkdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const ARTIFACTS = join(ROOT, "tests/artifacts");

interface Suite {
  name: string;
  /** Test files handed to `bun test`. */
  paths: string[];
  /** Command the suite runs under, e.g. a fresh network namespace. */
  wrap?: string[];
  env?: Record<string, string>;
  /** Brings up what the suite needs and returns more environment; throwing fails the suite. */
  setup?: () => Promise<Record<string, string>>;
}

/** Starts the local Postgres cluster and its test role (scripts/postgres-test.sh); the URL holds a fresh password. */
async function startPostgres(): Promise<Record<string, string>> {
  const script = Bun.spawn([join(ROOT, "scripts/postgres-test.sh")], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
  if ((await script.exited) !== 0) throw new Error("scripts/postgres-test.sh failed: Postgres is not available for the store and API tests");
  return { GIG_TEST_POSTGRES_URL: readFileSync(join(ARTIFACTS, "postgres-url"), "utf8").trim() };
}

function testFiles(pattern: string): string[] {
  return [...new Bun.Glob(pattern).scanSync({ cwd: ROOT })].sort().map((file) => `./${file}`);
}

const SUITES: Suite[] = [
  { name: "core", paths: testFiles("tests/*.test.ts") },
  // Sandbox and egress tests create veths, addresses and firewall rules: they run inside a network
  // namespace of their own, so nothing they do (or get wrong) can reach the host's network.
  { name: "sandbox", paths: testFiles("tests/sandbox/*.test.ts"), wrap: ["unshare", "--net", "--"], env: { GIG_TEST_HOST_NETNS: readlinkSync("/proc/self/ns/net") } },
  // The store, API and two-instance tests again, each test file on a new database of a local Postgres server.
  { name: "postgres", paths: [...testFiles("tests/store*.test.ts"), ...testFiles("tests/api*.test.ts"), ...testFiles("tests/instances*.test.ts")], setup: startPostgres },
];

interface Outcome {
  passed: number;
  failed: number;
}

async function runSuite(suite: Suite): Promise<Outcome> {
  const report = join(ARTIFACTS, `junit-${suite.name}.xml`);
  rmSync(report, { force: true });
  if (suite.paths.length === 0) return { passed: 0, failed: 0 };
  let env = { ...process.env, ...suite.env };
  try {
    if (suite.setup) env = { ...env, ...(await suite.setup()) };
  } catch (error) {
    console.error(`suite ${suite.name} cannot run: ${(error as Error).message}`);
    return { passed: 0, failed: 1 };
  }
  const child = Bun.spawn(
    [...(suite.wrap ?? []), process.execPath, "test", "--timeout", "120000", "--reporter=junit", `--reporter-outfile=${report}`, ...suite.paths],
    { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"], env },
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

/**
 * Sandboxes run as unprivileged host uids and read the checkout (the runtime, the sources, the test
 * servers) through read-only binds, so every folder above it must be traversable by others. A clone
 * made in a private temporary folder (mktemp -d is 0700) gets o+x there, never read access; anything
 * else private is reported instead of changed.
 */
function makeCheckoutReachable(): string | undefined {
  const temp = realpathSync(tmpdir());
  for (let dir = dirname(ROOT); dir !== dirname(dir); dir = dirname(dir)) {
    const mode = statSync(dir).mode;
    if (mode & 0o001) continue;
    if (!dir.startsWith(`${temp}/`)) return `${dir} is not traversable by others (mode ${(mode & 0o777).toString(8)}): sandboxed test servers cannot read the checkout; chmod o+x it or clone elsewhere`;
    chmodSync(dir, mode | 0o001);
    console.log(`made ${dir} traversable (o+x) so sandboxed test servers can read the checkout`);
  }
  return undefined;
}

mkdirSync(ARTIFACTS, { recursive: true });
let passed = 0;
let failed = 0;
const unreachable = makeCheckoutReachable();
if (unreachable) {
  console.error(`suite sandbox cannot run: ${unreachable}`);
  failed += 1;
}
for (const suite of SUITES.filter((candidate) => !(unreachable && candidate.name === "sandbox"))) {
  const outcome = await runSuite(suite);
  console.log(`suite ${suite.name}: ${outcome.passed} passed, ${outcome.failed} failed`);
  passed += outcome.passed;
  failed += outcome.failed;
}
const summary = `${passed} passed, ${failed} failed`;
writeFileSync(join(ARTIFACTS, "summary.txt"), `${summary}\n`);
console.log(summary);
process.exitCode = failed === 0 ? 0 : 1;
