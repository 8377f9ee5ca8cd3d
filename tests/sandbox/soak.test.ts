/**
 * Soak: mixed MCP and proxied traffic for GIG_SOAK_SECONDS (120 in `make
 * test`, longer with `make soak`) against sandboxed backends that the idle
 * timeout keeps reaping and respawning, while sessions come and go. Fails when
 * the process's memory or open descriptors, the running sandboxes or the
 * database's rows grow beyond bounds once warmed up.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { connect, startTestGateway, text, type TestGateway } from "../helpers/gateway.ts";
import { addKeyedFetch, sandboxSettings, startTestApi } from "./fetch-upstream.ts";
import { assertIsolatedNetns } from "./netns.ts";

const SECONDS = Number(process.env.GIG_SOAK_SECONDS ?? "120");
const WORKERS = 8;
/** Growth allowed after the warm-up: memory settles, descriptors and sandboxes do not creep. */
const BOUNDS = { rssBytes: 96 * 1024 * 1024, fds: 32, sandboxes: 2 };
const SECRET = `sk-soak-${crypto.randomUUID()}`;

let gateway: TestGateway;
let upstream: ReturnType<typeof Bun.serve>;
let token: string;

// The proxy writes one audit line per decision to stdout: counted here instead of flooding the test log.
let auditLines = 0;
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
  if (typeof chunk === "string" && chunk.startsWith('{"audit":"egress"')) {
    auditLines++;
    return true;
  }
  return write(chunk, ...rest);
}) as typeof process.stdout.write;

beforeAll(async () => {
  assertIsolatedNetns();
  const api = startTestApi((request) => new Response(request.headers.get("authorization") === `Bearer ${SECRET}` ? "authorized" : "wrong key"));
  upstream = api.server;
  gateway = await startTestGateway(
    {
      ...sandboxSettings("soak", 330000, 18089),
      // Short enough that backends are reaped and started again many times during the soak.
      GIG_IDLE_TIMEOUT: "3s",
      GIG_RATE_LIMIT: "1000000",
      GIG_RATE_LIMIT_IP: "1000000",
    },
    { egress: api.proxy },
  );
  await addKeyedFetch(gateway, api.egress, SECRET);
  token = await gateway.profile("soak", ["echo", "fetch"]);
}, 60_000);

afterAll(async () => {
  await gateway?.close();
  upstream?.stop(true);
});

interface Sample {
  rssBytes: number;
  fds: number;
  sandboxes: number;
  rows: Record<string, number>;
}

function sample(): Sample {
  const status = readFileSync("/proc/self/status", "utf8");
  const db = new Database(join(gateway.dataDir, "gigmcp.db"), { readonly: true });
  try {
    const tables = db.query<{ name: string }, []>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'").all();
    const rows = Object.fromEntries(tables.map(({ name }) => [name, db.query<{ n: number }, []>(`SELECT count(*) AS n FROM "${name}"`).get()!.n]));
    return {
      rssBytes: Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * 1024,
      fds: readdirSync("/proc/self/fd").length,
      sandboxes: gateway.gateway.backendStatus().length,
      rows,
    };
  } finally {
    db.close();
  }
}

/** One worker: a session doing a mix of calls, replaced by a fresh session every 50 operations. */
async function worker(until: number, counts: { calls: number; failures: string[] }): Promise<void> {
  while (Date.now() < until) {
    const client = await connect(`${gateway.url}/mcp/p/soak`, token);
    try {
      for (let i = 0; i < 50 && Date.now() < until; i++) {
        const pick = Math.random();
        if (pick < 0.45) {
          const message = crypto.randomUUID();
          const echoed = text(await client.callTool({ name: "echo_echo", arguments: { message } }));
          if (echoed !== message) counts.failures.push(`echo returned ${echoed}`);
        } else if (pick < 0.9) {
          const fetched = text(await client.callTool({ name: "fetch_fetch", arguments: { url: `https://api.test:${upstream.port}/soak` } }));
          if (!fetched.includes("authorized") || fetched.includes("wrong key")) counts.failures.push(`fetch returned ${fetched.slice(0, 200)}`);
        } else {
          await client.listTools();
        }
        counts.calls++;
      }
    } catch (error) {
      counts.failures.push(String(error));
    } finally {
      await client.close();
    }
    // Now and then everyone pauses past the idle timeout, so the backends are reaped and started again.
    if (Math.random() < 0.05) await Bun.sleep(3_500);
  }
}

test(
  `${SECONDS} s of mixed MCP and proxied traffic: no growth of memory, descriptors, sandboxes or rows beyond bounds`,
  async () => {
    const counts = { calls: 0, failures: [] as string[] };
    const started = Date.now();
    const until = started + SECONDS * 1000;
    const workers = Array.from({ length: WORKERS }, () => worker(until, counts));

    // Warm-up: caches, JIT and the first sandboxes settle during the first fifth.
    await Bun.sleep(Math.max(5_000, SECONDS * 200));
    const baseline = sample();
    const callsAtBaseline = counts.calls;
    const samples: Sample[] = [];
    const sampler = setInterval(() => samples.push(sample()), 5_000);
    await Promise.all(workers);
    clearInterval(sampler);
    // Let idle backends go and in-flight audit writes land before the final look.
    await Bun.sleep(4_000);
    Bun.gc(true);
    const final = sample();
    const calls = counts.calls - callsAtBaseline;

    const peak = (key: "rssBytes" | "fds" | "sandboxes") => Math.max(final[key], ...samples.map((s) => s[key]));
    console.log(
      `soak: ${counts.calls} operations in ${SECONDS} s (${Math.round(counts.calls / SECONDS)}/s), ` +
        `rss ${Math.round(baseline.rssBytes / 2 ** 20)} → ${Math.round(final.rssBytes / 2 ** 20)} MiB (peak ${Math.round(peak("rssBytes") / 2 ** 20)}), ` +
        `fds ${baseline.fds} → ${final.fds}, ${auditLines} egress audit lines, sandboxes peak ${peak("sandboxes")}, rows ${JSON.stringify(baseline.rows)} → ${JSON.stringify(final.rows)}`,
    );
    expect(counts.failures.slice(0, 5)).toEqual([]);
    expect(auditLines).toBeGreaterThan(0);
    expect(counts.calls).toBeGreaterThan(SECONDS * 5);
    expect(final.rssBytes - baseline.rssBytes).toBeLessThan(BOUNDS.rssBytes);
    expect(final.fds - baseline.fds).toBeLessThan(BOUNDS.fds);
    expect(peak("sandboxes")).toBeLessThanOrEqual(BOUNDS.sandboxes);
    for (const [table, count] of Object.entries(final.rows)) {
      // The audit log grows by design, by at most a few events per operation (tool call, egress decision);
      // nothing else may grow with traffic.
      const allowed = table === "audit_events" ? (baseline.rows[table] ?? 0) + 3 * (calls + WORKERS * 50) : (baseline.rows[table] ?? 0) + 2;
      expect({ table, withinBound: count <= allowed }).toEqual({ table, withinBound: true });
    }
  },
  (SECONDS + 90) * 1000,
);
