/**
 * The REST routes the dashboard reads over real HTTP: the registry catalog
 * (signed test index, a tampered one, none configured), running sandboxes
 * with their memory, the audit summary counted in SQL, and the CSV export
 * (quoting, formula escaping, paging, tenant visibility).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processTreeRssBytes } from "../src/sandbox/index.ts";
import type { User } from "../src/store/index.ts";
import { connect, startTestGateway, tempDir, type TestGateway } from "./helpers/gateway.ts";
import { generateSigningKey, syntheticIndex, writeSignedIndex } from "./helpers/registry.ts";

const key = generateSigningKey();
const registryDir = tempDir("gigmcp-catalog-");
let gateway: TestGateway;
let api: string;
let member: User;
let adminToken: string;
let memberToken: string;

async function get(token: string, path: string): Promise<Response> {
  return fetch(`${api}${path}`, { headers: { authorization: `Bearer ${token}` } });
}

async function getJson<T>(token: string, path: string): Promise<T> {
  const response = await get(token, path);
  expect({ path, status: response.status }).toEqual({ path, status: 200 });
  return (await response.json()) as T;
}

/** The synthetic index, signed just now so that it is neither frozen nor from the future. */
function signIndex(): Uint8Array {
  writeSignedIndex(registryDir, { ...syntheticIndex(), generated: new Date(Date.now() - 60_000).toISOString() }, key);
  return readFileSync(join(registryDir, "index.json"));
}

beforeAll(async () => {
  gateway = await startTestGateway({ GIG_REGISTRY_URL: join(registryDir, "index.json"), GIG_REGISTRY_PUBKEY: key.publicKeyHex }, { api: true });
  api = `${gateway.url}/api/v1`;
  member = await gateway.store.users.create({ email: "member@test", role: "member" });
  adminToken = (await gateway.auth!.createApiToken(gateway.admin.id, { label: "admin", scopes: ["read"], expiresInDays: 1 })).token;
  memberToken = (await gateway.auth!.createApiToken(member.id, { label: "member", scopes: ["read"], expiresInDays: 1 })).token;
});

afterAll(async () => {
  await gateway?.close();
  rmSync(registryDir, { recursive: true, force: true });
});

interface Catalog {
  servers: { name: string; category: string | null; installed: unknown }[];
  categories: string[];
}

describe("catalog", () => {
  test("a tampered index is a 502 with the verification error, audited as a denied registry.index", async () => {
    const bytes = signIndex();
    // One byte changed after signing ("schemaVersion" becomes "schemAVersion"): the signature no longer matches.
    bytes[bytes.indexOf("a".charCodeAt(0))] = "A".charCodeAt(0);
    writeFileSync(join(registryDir, "index.json"), bytes);
    const response = await get(memberToken, "/catalog");
    expect(response.status).toBe(502);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("registry_unavailable");
    expect(body.error.message).toContain("signature");
    const [event] = await gateway.store.audit.list({ action: "registry.index" });
    expect(event).toMatchObject({ decision: "deny", actor: "member@test", detail: { reason: body.error.message } });
  });

  test("lists the latest servers with their grants, install problems and installed version; searches and narrows by category", async () => {
    signIndex();
    const manifest = syntheticIndex().servers["mailchimp"]!.versions["0.1.0"]!;
    const digest = (manifest.image as { digest: string }).digest;
    await gateway.addServer({
      name: "mailchimp",
      command: "/bin/true",
      installed: { reference: "mailchimp@0.1.0", image: "ghcr.io/gigmcp/mailchimp-mcp", digest, consentHash: "0".repeat(64) },
    });
    const catalog = await getJson<Catalog>(memberToken, "/catalog");
    expect(catalog.servers).toHaveLength(Object.keys(syntheticIndex().servers).length);
    const categories = [...new Set(catalog.servers.flatMap((server) => (server.category ? [server.category] : [])))].sort();
    expect(catalog.categories).toEqual(categories);
    expect(catalog.categories).toContain("CRM");
    expect(catalog.servers.find((server) => server.name === "mailchimp")).toEqual({
      name: "mailchimp",
      version: "0.1.0",
      displayName: manifest.displayName ?? null,
      description: manifest.description ?? null,
      category: "marketing",
      tier: manifest.tier,
      egress: ["login.mailchimp.com", "*.api.mailchimp.com (any host under api.mailchimp.com)"],
      credentials: [{ id: "mailchimp_token", type: "oauth2", vendor: "mailchimp" }],
      tools: 10,
      installable: true,
      problem: null,
      installed: { version: "0.1.0", digest },
    } as never);
    expect(catalog.servers.find((server) => server.name === "waboxapp")).toMatchObject({
      installable: false,
      problem: expect.stringContaining("placeholder"),
      installed: null,
    });

    const searched = await getJson<Catalog>(memberToken, "/catalog?q=google");
    expect(searched.servers.map((server) => server.name)).toEqual(["google-analytics", "google-maps", "googledrive"]);
    expect(searched.categories).toEqual(catalog.categories);
    const crm = await getJson<Catalog>(memberToken, "/catalog?category=CRM");
    expect(crm.servers.length).toBeGreaterThan(0);
    expect(crm.servers.every((server) => server.category === "CRM")).toBe(true);
    expect((await getJson<Catalog>(memberToken, "/catalog?category=crm")).servers).toEqual([]);
  });

  test("without a configured registry the catalog is a 503 saying what to set", async () => {
    const bare = await startTestGateway({}, { api: true });
    try {
      const { token } = await bare.auth!.createApiToken(bare.admin.id, { label: "t", scopes: ["read"], expiresInDays: 1 });
      const response = await fetch(`${bare.url}/api/v1/catalog`, { headers: { authorization: `Bearer ${token}` } });
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({
        error: { code: "registry_unconfigured", message: "no registry is configured: set GIG_REGISTRY_URL and GIG_REGISTRY_PUBKEY" },
      });
    } finally {
      await bare.close();
    }
  });
});

describe("running sandboxes", () => {
  test("a running echo backend reports its uptime and the memory it uses", async () => {
    const token = await gateway.profile("running", ["echo"]);
    const client = await connect(`${gateway.url}/mcp/p/running`, token);
    await client.callTool({ name: "echo_echo", arguments: { message: "up" } });
    const [running] = await getJson<{ server: string; tenantId: string; pid: number; startedAt: number; uptimeSeconds: number; memoryBytes: number | null }[]>(
      adminToken,
      "/servers/running",
    );
    expect({ server: running!.server, tenantId: running!.tenantId }).toEqual({ server: "echo", tenantId: gateway.admin.id });
    expect(Number.isInteger(running!.pid) && running!.startedAt <= Date.now()).toBe(true);
    expect(Number.isInteger(running!.uptimeSeconds) && running!.uptimeSeconds >= 0).toBe(true);
    expect(running!.uptimeSeconds).toBeLessThanOrEqual(Math.ceil((Date.now() - running!.startedAt) / 1000));
    // A Bun process holds well over a megabyte resident.
    expect(running!.memoryBytes).toBeGreaterThan(1024 * 1024);
    expect(await getJson(memberToken, "/servers/running")).toEqual([]);
    await client.close();
  });

  test("a server's tools are listed from the caller's own backend, for picking a profile's tools", async () => {
    const tools = await getJson<{ name: string; description?: string }[]>(memberToken, "/servers/echo/tools");
    expect(tools.map((tool) => tool.name)).toContain("echo");
    expect(tools.every((tool) => typeof tool.description === "string")).toBe(true);
    expect((await getJson<{ tenantId: string }[]>(adminToken, "/servers/running")).map((backend) => backend.tenantId)).toContain(member.id);
    expect((await get(memberToken, "/servers/nope/tools")).status).toBe(404);
  });

  test("a process's memory is the resident memory of it and all its descendants", async () => {
    const tree = Bun.spawn(["/bin/sh", "-c", "sleep 30 & sleep 30 & sleep 30 & wait"]);
    const rss = (pid: number) => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
    try {
      let children: number[] = [];
      while (children.length < 3) {
        await Bun.sleep(20);
        children = readFileSync(`/proc/${tree.pid}/task/${tree.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
      }
      const expected = rss(tree.pid) + children.reduce((sum, child) => sum + rss(child), 0);
      expect(processTreeRssBytes(tree.pid)).toBe(expected);
      expect(expected).toBeGreaterThan(rss(tree.pid));
    } finally {
      tree.kill("SIGKILL");
      await tree.exited;
    }
    expect(processTreeRssBytes(tree.pid)).toBeNull();
  });
});

interface Summary {
  bucketMs: number;
  buckets: { start: number; calls: number; denies: number }[];
}

describe("audit summary", () => {
  test("counts tool calls and denials per bucket, every bucket present, each tenant only its own", async () => {
    const counter = await gateway.store.users.create({ email: "counter@test", role: "member" });
    const { token } = await gateway.auth!.createApiToken(counter.id, { label: "t", scopes: ["read"], expiresInDays: 1 });
    const first = await gateway.store.audit.record({ action: "tool.call", decision: "allow", tenantId: counter.id });
    while (Date.now() === first.time) await Bun.sleep(1);
    const second = await gateway.store.audit.record({ action: "tool.call", decision: "deny", tenantId: counter.id });
    await gateway.store.audit.record({ action: "proxy.request", decision: "deny", tenantId: counter.id });
    await gateway.store.audit.record({ action: "tool.call", decision: "allow", tenantId: gateway.admin.id });
    // Buckets of 1 s placed so that the second event opens bucket 5 and the first ends bucket 4.
    const since = second.time - 5000;

    const own = await getJson<Summary>(token, `/audit/summary?since=${since}&bucket=1000`);
    expect(own.bucketMs).toBe(1000);
    expect(own.buckets.length).toBe(Math.floor((Date.now() - since) / 1000) + 1);
    own.buckets.forEach((bucket, index) => expect(bucket.start).toBe(since + index * 1000));
    const expected = own.buckets.map(() => ({ calls: 0, denies: 0 }));
    expected[4] = { calls: 1, denies: 0 };
    // The proxy denial lands in bucket 5 too unless a second boundary passed while recording.
    const third = Math.floor(((await gateway.store.audit.list({ tenantId: counter.id, limit: 1 }))[0]!.time - since) / 1000);
    expected[5] = { calls: 1, denies: 1 };
    expected[third]!.denies += 1;
    expect(own.buckets.map(({ calls, denies }) => ({ calls, denies }))).toEqual(expected);

    // Naming another tenant changes nothing for a member; an admin sees every tenant, or the one named.
    expect((await getJson<Summary>(token, `/audit/summary?since=${since}&bucket=1000&tenant=${gateway.admin.id}`)).buckets).toEqual(own.buckets);
    const named = await getJson<Summary>(adminToken, `/audit/summary?since=${since}&bucket=1000&tenant=${counter.id}`);
    expect(named.buckets.slice(0, 6)).toEqual(own.buckets.slice(0, 6));
    const everyone = await getJson<Summary>(adminToken, `/audit/summary?since=${since}&bucket=1000`);
    const total = (summary: Summary) => summary.buckets.reduce((sum, bucket) => sum + bucket.calls, 0);
    expect(total(everyone)).toBeGreaterThanOrEqual(total(own) + 1);
  });

  test("defaults to the last 24 hours in hours, and refuses more than 500 buckets", async () => {
    const before = Date.now();
    const summary = await getJson<Summary>(memberToken, "/audit/summary");
    expect(summary.bucketMs).toBe(3_600_000);
    expect(summary.buckets).toHaveLength(25);
    expect(summary.buckets[0]!.start).toBeGreaterThanOrEqual(before - 86_400_000);
    expect(summary.buckets[0]!.start).toBeLessThanOrEqual(Date.now() - 86_400_000);
    const refused = await get(memberToken, `/audit/summary?since=${Date.now() - 600_000}&bucket=1000`);
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: { code: "too_many_buckets", message: expect.stringContaining("larger bucket") } });
    expect((await get(memberToken, `/audit/summary?since=${Date.now() + 60_000}`)).status).toBe(400);
    expect((await get(memberToken, "/audit/summary?bucket=10")).status).toBe(400);
  });
});

/** RFC 4180 parsing, written independently of the exporter. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let index = 0; index < text.length; index++) {
    const char = text[index]!;
    if (quoted) {
      if (char === '"' && text[index + 1] === '"') (cell += '"'), index++;
      else if (char === '"') quoted = false;
      else cell += char;
    } else if (char === '"') quoted = true;
    else if (char === ",") row.push(cell), (cell = "");
    else if (char === "\r" && text[index + 1] === "\n") row.push(cell), rows.push(row), (row = []), (cell = ""), index++;
    else cell += char;
  }
  expect(cell).toBe("");
  return rows;
}

describe("audit export", () => {
  test("is a CSV download, quoted per RFC 4180, with formula-like cells made inert", async () => {
    const awkward = ["=HYPERLINK(\"http://evil.example\")", "+1", "-2", "@SUM(A1)", "\tTAB", "\rCR", 'plain, with "quotes"\nand a line'];
    for (const actor of awkward) await gateway.store.audit.record({ action: "export.test", decision: "deny", actor, tenantId: member.id, detail: { note: actor } });
    await gateway.store.audit.record({ action: "export.test", decision: "allow", actor: "admin", tenantId: gateway.admin.id });

    const response = await get(memberToken, "/audit/export?action=export.test");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(response.headers.get("content-disposition")).toBe('attachment; filename="gigmcp-audit.csv"');
    const text = await response.text();
    expect(text).toStartWith("id,time,action,decision,actor,tenant,detail\r\n");
    expect(text).toContain(`"'=HYPERLINK(""http://evil.example"")"`);
    const [header, ...rows] = parseCsv(text);
    expect(header).toEqual(["id", "time", "action", "decision", "actor", "tenant", "detail"]);
    // Newest first, the member's own only.
    const inert = (value: string) => (/^[=+\-@\t\r]/.test(value) ? `'${value}` : value);
    expect(rows.map((row) => row[4])).toEqual([...awkward].reverse().map(inert));
    for (const row of rows) {
      expect(row[5]).toBe(member.id);
      expect(new Date(row[1]!).toISOString()).toBe(row[1]!);
      expect(JSON.parse(row[6]!)).toHaveProperty("note");
    }

    const adminRows = parseCsv(await (await get(adminToken, "/audit/export?action=export.test")).text()).slice(1);
    expect(adminRows).toHaveLength(awkward.length + 1);
    const namedRows = parseCsv(await (await get(adminToken, `/audit/export?action=export.test&tenant=${member.id}`)).text()).slice(1);
    expect(namedRows).toEqual(rows);
    expect(parseCsv(await (await get(memberToken, "/audit/export?action=export.test&limit=2")).text())).toHaveLength(3);
  });

  test("pages through the repository beyond its 1000-row limit", async () => {
    for (let index = 0; index < 1005; index++) await gateway.store.audit.record({ action: "export.bulk", decision: "allow", tenantId: member.id });
    const rows = parseCsv(await (await get(memberToken, "/audit/export?action=export.bulk")).text()).slice(1);
    expect(rows).toHaveLength(1005);
    const ids = rows.map((row) => Number(row[0]));
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(new Set(ids).size).toBe(1005);
    const after = ids.at(-1)! + 1;
    const following = parseCsv(await (await get(memberToken, `/audit/export?action=export.bulk&after=${after}`)).text()).slice(1);
    expect(following.map((row) => Number(row[0]))).toEqual([...ids].reverse().slice(2));
  });
});
