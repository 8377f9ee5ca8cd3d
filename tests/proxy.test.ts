/**
 * Egress proxy: unit tests of its rules (anti-SSRF, allowlist, denylist,
 * placeholder scanning, certificates), then the proxy itself end to end on
 * loopback with real TLS on both sides. Test names resolve to 127.0.0.1
 * through an injected resolver: nothing here looks up or reaches an outside
 * address.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { createLogger } from "../src/log/index.ts";
import {
  createCertificateAuthority,
  createEgressProxy,
  isForbiddenAddress,
  isValidEgressEntry,
  loadCertificateAuthority,
  loadDenylist,
  matchesEgress,
  type CertificateAuthority,
  type CredentialBinding,
  type EgressAuditEvent,
  type EgressIdentity,
  type EgressProxy,
  type ProxyOptions,
} from "../src/proxy/index.ts";
import { parseRequestHead, ProtocolError, requestFraming } from "../src/proxy/http1.ts";
import { createLeafCache } from "../src/proxy/leaves.ts";
import { exactNeedle, PLACEHOLDER_NEEDLE, StreamScanner, type Needle } from "../src/proxy/placeholders.ts";
import { auditPath } from "../src/proxy/tunnel.ts";
import {
  createTestPki,
  openTunnel,
  openTunnelEagerly,
  patternStream,
  proxiedFetch,
  rawExchange,
  sendConnect,
  startHttpsUpstream,
  startRawUpstream,
  type RawUpstream,
  type RecordedRequest,
  type TestPki,
  type TestUpstream,
} from "./helpers/https-upstream.ts";
import { ROOT, tempDir } from "./helpers/gateway.ts";

const BEARER_PLACEHOLDER = `gigph-${"0123456789abcdef".repeat(2)}`;
const BASIC_PLACEHOLDER = `gigph-${"b".repeat(32)}`;
const SCOPED_PLACEHOLDER = `gigph-${"c".repeat(32)}`;
const BROKEN_PLACEHOLDER = `gigph-${"d".repeat(32)}`;
const UNKNOWN_PLACEHOLDER = `gigph-${"e".repeat(32)}`;
const SECRET = "s3cr3t-value";
const BASIC_SECRET = "dXNlcjpwYXNz";
const IDENTITY: EgressIdentity = { serverId: "srv-1", serverName: "weather", tenantId: "tenant-1" };
const MiB = 1024 * 1024;
/** The pinned Node (devDependency) if installed, else the one on PATH. */
const NODE = existsSync(join(ROOT, "node_modules/.bin/node")) ? join(ROOT, "node_modules/.bin/node") : "node";
/**
 * Most a 50 MiB body may run ahead of a stalled reader: loopback socket
 * buffers of two connections (autotuned to several MiB each) plus the
 * proxy's own 256 KiB read and 64 KiB write buffers; never half the body.
 */
const MAX_IN_FLIGHT = 25 * MiB;

async function echoOf(response: Response): Promise<RecordedRequest> {
  return (await response.json()) as RecordedRequest;
}

describe("isForbiddenAddress", () => {
  const cases: [string, string | undefined][] = [
    ["93.184.216.34", undefined],
    ["8.8.8.8", undefined],
    ["2606:4700::1111", undefined],
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "this network"],
    ["10.0.0.1", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["172.32.0.1", undefined],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "shared (CGNAT)"],
    ["100.127.255.255", "shared (CGNAT)"],
    ["100.128.0.1", undefined],
    ["169.254.1.1", "link-local"],
    ["169.254.169.254", "cloud metadata"],
    ["168.63.129.16", "cloud metadata"],
    ["192.0.0.8", "IETF protocol assignments"],
    ["192.0.2.1", "documentation"],
    ["198.18.0.1", "benchmarking"],
    ["198.19.255.255", "benchmarking"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["240.0.0.1", "reserved"],
    ["255.255.255.255", "broadcast"],
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["fe80::1", "link-local"],
    ["fe80::1%eth0", "link-local"],
    ["fc00::1", "unique local"],
    ["fd12:3456::1", "unique local"],
    ["fd00:ec2::254", "cloud metadata"],
    ["ff02::1", "multicast"],
    ["fec0::1", "site-local"],
    ["2001:db8::1", "documentation"],
    ["2001::1", "Teredo"],
    ["100::1", "discard"],
    ["64:ff9b:1::1", "reserved"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:169.254.169.254", "cloud metadata"],
    ["::ffff:10.1.2.3", "private"],
    ["::ffff:8.8.8.8", undefined],
    ["::127.0.0.1", "loopback"],
    ["::a00:1", "private"],
    ["64:ff9b::127.0.0.1", "loopback"],
    ["64:ff9b::a9fe:a9fe", "cloud metadata"],
    ["64:ff9b::808:808", undefined],
    ["2002:7f00:1::", "loopback"],
    ["2002:c0a8:101::1", "private"],
    ["2002:a9fe:a9fe::", "cloud metadata"],
    ["2002:808:808::1", undefined],
    ["not-an-ip", "invalid address"],
    ["1.2.3", "invalid address"],
    ["010.0.0.1", "invalid address"],
    ["1::2::3", "invalid address"],
  ];
  test.each(cases)("%s → %p", (ip, expected) => {
    expect(isForbiddenAddress(ip, [])).toBe(expected);
  });

  test("allowAddresses exempts addresses and networks, in either IP version's spelling", () => {
    expect(isForbiddenAddress("127.0.0.1", ["127.0.0.1"])).toBeUndefined();
    expect(isForbiddenAddress("::ffff:127.0.0.1", ["127.0.0.1"])).toBeUndefined();
    expect(isForbiddenAddress("10.9.8.7", ["10.0.0.0/8"])).toBeUndefined();
    expect(isForbiddenAddress("fd00::5", ["fd00::/8"])).toBeUndefined();
    expect(isForbiddenAddress("127.0.0.2", ["127.0.0.1"])).toBe("loopback");
    expect(isForbiddenAddress("169.254.169.254", ["10.0.0.0/8"])).toBe("cloud metadata");
    expect(() => isForbiddenAddress("1.2.3.4", ["10.0.0.0/99"])).toThrow(/invalid allowed address/);
  });
});

describe("matchesEgress", () => {
  const cases: [string[], string, number, boolean][] = [
    [["api.example.com"], "api.example.com", 443, true],
    [["API.Example.com"], "api.EXAMPLE.com", 443, true],
    [["api.example.com"], "api.example.com", 8443, false],
    [["api.example.com"], "example.com", 443, false],
    [["api.example.com"], "x.api.example.com", 443, false],
    [["api.example.com:8443"], "api.example.com", 8443, true],
    [["api.example.com:8443"], "api.example.com", 443, false],
    [["*.example.com"], "api.example.com", 443, true],
    [["*.example.com"], "example.com", 443, false],
    [["*.example.com"], "a.b.example.com", 443, false],
    [["*.example.com"], "api.example.com.evil.test", 443, false],
    [["*.example.com"], "apiexample.com", 443, false],
    [["*.example.com:8080"], "api.example.com", 8080, true],
    [["*.example.com:8080"], "api.example.com", 443, false],
    [["**.example.com"], "api.example.com", 443, true],
    [["**.example.com"], "a.b.c.example.com", 443, true],
    [["**.example.com"], "example.com", 443, false],
    [["**.example.com"], "notexample.com", 443, false],
    [["*"], "example.com", 443, false],
    [["*.com.*"], "a.com.b", 443, false],
    [["a.*.example.com"], "a.b.example.com", 443, false],
    [["api.example.com:0"], "api.example.com", 0, false],
    [["api.example.com:99999"], "api.example.com", 99999, false],
    [[], "api.example.com", 443, false],
    [["other.test", "api.example.com"], "api.example.com", 443, true],
  ];
  test.each(cases)("%p allows %s:%d → %p", (entries, host, port, expected) => {
    expect(matchesEgress(entries, host, port)).toBe(expected);
  });

  test("isValidEgressEntry accepts the three forms with optional ports only", () => {
    for (const entry of ["api.example.com", "*.example.com", "**.example.com:8443", "localhost"]) expect(isValidEgressEntry(entry)).toBe(true);
    for (const entry of ["*", "**", "*.", "a.*.b", "https://api.example.com", "api.example.com/", "1.2.3.4", "api.example.com:", "-a.example.com"]) {
      expect(isValidEgressEntry(entry)).toBe(false);
    }
  });
});

test("loadDenylist trims, lowercases and skips blank and comment lines", () => {
  expect(loadDenylist("# exfiltration sites\n\n  Pastebin.COM \r\n#ngrok.io\ntransfer.sh\n   \n")).toEqual(["pastebin.com", "transfer.sh"]);
});

test("auditPath drops query values and keeps parameter names", () => {
  expect(auditPath("/v1/x?key=secret&q=hello%20world&flag")).toBe("/v1/x?key=&q=&flag");
  expect(auditPath("/plain/path")).toBe("/plain/path");
  expect(auditPath(`/${"a".repeat(5000)}`).length).toBeLessThan(2100);
});

describe("HTTP/1.1 parsing inside the tunnel", () => {
  const head = (lines: string[]) => `${lines.join("\r\n")}\r\n\r\n`;
  const statusOf = (action: () => unknown) => {
    try {
      action();
    } catch (error) {
      return (error as ProtocolError).status;
    }
    return 0;
  };

  test("refuses ambiguous or unsupported request framing (request smuggling)", () => {
    const framing = (...fields: string[]) => statusOf(() => requestFraming(parseRequestHead(head(["POST / HTTP/1.1", "Host: a.test", ...fields])).fields));
    expect(framing("Content-Length: 5", "Transfer-Encoding: chunked")).toBe(400);
    expect(framing("Content-Length: 5", "Content-Length: 6")).toBe(400);
    expect(framing("Content-Length: 5, 6")).toBe(400);
    expect(framing("Content-Length: -1")).toBe(400);
    expect(framing("Transfer-Encoding: gzip, chunked")).toBe(501);
    expect(framing("Transfer-Encoding: chunked", "Transfer-Encoding: chunked")).toBe(501);
    expect(framing("Content-Length: 5", "Content-Length: 5")).toBe(0);
    expect(requestFraming(parseRequestHead(head(["POST / HTTP/1.1", "Transfer-Encoding: Chunked"])).fields)).toEqual({ kind: "chunked" });
  });

  test("refuses malformed heads", () => {
    const parse = (...lines: string[]) => statusOf(() => parseRequestHead(head(lines)));
    expect(parse("GET / HTTP/1.0", "Host: a.test")).toBe(505);
    expect(parse("GET http://a.test/ HTTP/1.1", "Host: a.test")).toBe(400);
    expect(parse("GET / HTTP/1.1", "Host: a.test", " folded")).toBe(400);
    expect(parse("GET / HTTP/1.1", "Bad Header: x")).toBe(400);
    expect(parse("GET / HTTP/1.1", "X: a\rb")).toBe(400);
    expect(parse("GET / HTTP/1.1", "X: a\x00b")).toBe(400);
    expect(parse("GET /a b HTTP/1.1")).toBe(400);
    expect(parse("GET / HTTP/1.1", "Host: a.test")).toBe(0);
  });
});

describe("StreamScanner", () => {
  const scan = (chunks: string[], needle: Needle = PLACEHOLDER_NEEDLE) => {
    const scanner = new StreamScanner(needle);
    let forwarded = "";
    for (const chunk of chunks) {
      const safe = scanner.push(Buffer.from(chunk));
      if (!safe) return { found: true, forwarded };
      forwarded += safe.toString();
    }
    return { found: false, forwarded: forwarded + scanner.flush().toString() };
  };

  test("passes bodies without placeholders through unchanged", () => {
    expect(scan(["hello ", "gigph", "-not-a-placeholder ", "world"])).toEqual({ found: false, forwarded: "hello gigph-not-a-placeholder world" });
  });

  test("finds a placeholder whole, split at every position, and in upper case", () => {
    const body = `{"token":"${BEARER_PLACEHOLDER}"}`;
    expect(scan([body]).found).toBe(true);
    expect(scan([body.toUpperCase()]).found).toBe(true);
    for (let split = 1; split < body.length; split++) {
      const result = scan([body.slice(0, split), body.slice(split)]);
      expect(result.found).toBe(true);
      // Nothing of the placeholder left before it was recognised.
      expect(result.forwarded).not.toContain("gigph");
    }
    expect(scan(BEARER_PLACEHOLDER.split("")).found).toBe(true);
  });

  test("holds back only what could start a placeholder", () => {
    const scanner = new StreamScanner(PLACEHOLDER_NEEDLE);
    expect(scanner.push(Buffer.from("data: abc"))!.toString()).toBe("data: abc");
    expect(scanner.push(Buffer.from("xyz gigph-01"))!.toString()).toBe("xyz ");
    expect(scanner.push(Buffer.from("2x"))!.toString()).toBe("gigph-012x");
  });

  test("finds an exact secret split at every position, and holds back only a possible start of it", () => {
    const secret = "sk-live-0123456789abcdef";
    const body = `{"echo":"Bearer ${secret}","n":1}`;
    for (let split = 1; split < body.length; split++) {
      const result = scan([body.slice(0, split), body.slice(split)], exactNeedle([secret, "other-secret"]));
      expect(result.found).toBe(true);
      expect(result.forwarded).not.toContain(secret.slice(0, 4));
    }
    expect(scan(["sk-live-0123", "45-not-it"], exactNeedle([secret]))).toEqual({ found: false, forwarded: "sk-live-012345-not-it" });
    const scanner = new StreamScanner(exactNeedle([secret]));
    expect(scanner.push(Buffer.from("data: sk-"))!.toString()).toBe("data: ");
    expect(scanner.push(Buffer.from("x"))!.toString()).toBe("sk-x");
  });
});

describe("runtime CA", () => {
  test("creates an ECDSA P-256 CA, reloads it, and mints short-lived leaves it signed", async () => {
    const { authority, privateKeyPkcs8 } = await createCertificateAuthority({ commonName: "Test runtime CA" });
    const ca = new X509Certificate(authority.certificatePem);
    expect(ca.ca).toBe(true);
    expect(ca.subject).toContain("CN=Test runtime CA");
    expect(ca.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    const reloaded = await loadCertificateAuthority(authority.certificatePem, privateKeyPkcs8);
    const leaf = await reloaded.issueServerCertificate("api.test", 7 * 24 * 3600_000);
    const certificate = new X509Certificate(leaf.certificatePem);
    expect(certificate.verify(ca.publicKey)).toBe(true);
    expect(certificate.checkIssued(ca)).toBe(true);
    expect(certificate.subjectAltName).toBe("DNS:api.test");
    expect(certificate.ca).toBe(false);
    const lifetime = new Date(certificate.validTo).getTime() - Date.now();
    expect(lifetime).toBeGreaterThan(6.9 * 24 * 3600_000);
    expect(lifetime).toBeLessThanOrEqual(7 * 24 * 3600_000);
  });

  test("refuses a key that does not belong to the certificate", async () => {
    const first = await createCertificateAuthority();
    const second = await createCertificateAuthority();
    expect(loadCertificateAuthority(first.authority.certificatePem, second.privateKeyPkcs8)).rejects.toThrow(/does not match/);
  });

  test("the leaf cache is an LRU with a bound", async () => {
    const { authority } = await createCertificateAuthority();
    let minted = 0;
    const counting: CertificateAuthority = { ...authority, issueServerCertificate: (host, validity) => (minted++, authority.issueServerCertificate(host, validity)) };
    const cache = createLeafCache(counting, { capacity: 2, validityMs: 3600_000 });
    await cache.contextFor("a.test");
    await cache.contextFor("b.test");
    await cache.contextFor("a.test"); // hit: a.test becomes the most recently used
    await cache.contextFor("c.test"); // evicts b.test
    expect(cache.size).toBe(2);
    expect(minted).toBe(3);
    await cache.contextFor("a.test");
    expect(minted).toBe(3);
    await cache.contextFor("b.test");
    expect(minted).toBe(4);
  });
});

describe("egress proxy", () => {
  let pki: TestPki;
  let upstream: TestUpstream;
  let closeDelimited: RawUpstream;
  let recording: RawUpstream;
  let oneShot: RawUpstream;
  let runtime: Awaited<ReturnType<typeof createCertificateAuthority>>;
  let proxy: EgressProxy;
  let proxyPort: number;
  const audits: EgressAuditEvent[] = [];
  const extraProxies: EgressProxy[] = [];
  let viaProxy: ReturnType<typeof proxiedFetch>;
  let url: (host: string, path: string) => string;

  const resolver = async (host: string): Promise<string[]> => {
    const table: Record<string, string[]> = {
      "meta.test": ["169.254.169.254"],
      "mapped.test": ["::ffff:10.0.0.1"],
      "mixed.test": ["127.0.0.1", "10.1.2.3"],
    };
    if (table[host]) return table[host]!;
    if (host.endsWith(".test")) return ["127.0.0.1"];
    throw new Error(`test resolver: unknown host ${host}`);
  };

  function bindings(): CredentialBinding[] {
    return [
      { credentialId: "bearer", placeholder: BEARER_PLACEHOLDER, header: "Authorization", format: "Bearer {token}", secret: async () => SECRET },
      { credentialId: "basic", placeholder: BASIC_PLACEHOLDER, header: "X-Upstream-Auth", format: "Basic {token}", secret: async () => BASIC_SECRET },
      { credentialId: "scoped", placeholder: SCOPED_PLACEHOLDER, header: "X-Api-Key", format: "{token}", hosts: [`other.test:${upstream.port}`], secret: async () => "scoped-secret" },
      { credentialId: "broken", placeholder: BROKEN_PLACEHOLDER, header: "X-Broken", format: "{token}", secret: async () => Promise.reject(new Error("vault sealed")) },
    ];
  }

  function proxyOptions(overrides: Partial<ProxyOptions> = {}): ProxyOptions {
    return {
      identify: (sourceIp) => (sourceIp === "127.0.0.1" ? IDENTITY : undefined),
      policy: async () => ({
        egress: [
          `api.test:${upstream.port}`,
          `other.test:${upstream.port}`,
          `*.api.test:${upstream.port}`,
          `evil.test:${upstream.port}`,
          `**.evil.test:${upstream.port}`,
          `close.test:${closeDelimited.port}`,
          `record.test:${recording.port}`,
          `oneshot.test:${oneShot.port}`,
          `meta.test:${upstream.port}`,
          `mapped.test:${upstream.port}`,
          `mixed.test:${upstream.port}`,
        ],
        credentials: bindings(),
      }),
      ca: runtime.authority,
      denylist: ["evil.test"],
      allowAddresses: ["127.0.0.1"],
      resolve: resolver,
      upstreamCaCertificates: [pki.caPem],
      audit: (event) => audits.push(event),
      log: createLogger("error"),
      ...overrides,
    };
  }

  async function startProxy(overrides: Partial<ProxyOptions> = {}): Promise<number> {
    const extra = createEgressProxy(proxyOptions(overrides));
    extraProxies.push(extra);
    return extra.listen("127.0.0.1", 0);
  }

  /** The audit events recorded while `action` ran. */
  async function auditsOf(action: () => Promise<unknown>): Promise<EgressAuditEvent[]> {
    const before = audits.length;
    await action();
    // Request events are written when the exchange completes, just after the client got its answer.
    await Bun.sleep(20);
    return audits.slice(before);
  }

  beforeAll(async () => {
    pki = createTestPki();
    upstream = startHttpsUpstream(pki);
    closeDelimited = await startRawUpstream(pki, (socket) => {
      socket.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part, ");
      setTimeout(() => socket.end("second part"), 50);
    });
    // Never answers: a request to it is only there to be refused mid-body, and every byte it got is kept.
    recording = await startRawUpstream(pki, () => {});
    // Answers one request per connection, then closes it although the response allowed keep-alive.
    oneShot = await startRawUpstream(pki, (socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    runtime = await createCertificateAuthority();
    proxy = createEgressProxy(proxyOptions());
    proxyPort = await proxy.listen("127.0.0.1", 0);
    viaProxy = proxiedFetch(proxyPort, runtime.authority.certificatePem);
    url = (host, path) => `https://${host}:${upstream.port}${path}`;
  });

  afterAll(async () => {
    await Promise.all([proxy.stop(), ...extraProxies.map((extra) => extra.stop())]);
    await Promise.all([upstream.stop(), closeDelimited.stop(), recording.stop(), oneShot.stop()]);
  });

  describe("credential injection", () => {
    test("swaps the placeholder for the secret in its header on an allowlisted host, and audits it", async () => {
      const events = await auditsOf(async () => {
        const response = await viaProxy(url("api.test", "/quiet?key=abc&q=1"), { headers: { Authorization: `Bearer ${BEARER_PLACEHOLDER}` } });
        expect(response.status).toBe(200);
        await response.arrayBuffer();
      });
      expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${SECRET}`);
      expect(upstream.requests.at(-1)!.headers["accept-encoding"]).toBe("identity");
      expect(JSON.stringify(upstream.requests)).not.toContain(BEARER_PLACEHOLDER);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        decision: "inject",
        reason: "credential injected",
        credentialId: "bearer",
        sourceIp: "127.0.0.1",
        ...IDENTITY,
        host: "api.test",
        port: upstream.port,
        method: "GET",
        path: "/quiet?key=&q=",
        status: 200,
      });
      expect(events[0]!.bytesOut).toBeGreaterThan(0);
      expect(events[0]!.bytesIn).toBeGreaterThan(0);
      expect(events[0]!.latencyMs).toBeGreaterThanOrEqual(0);
      expect(JSON.stringify(events)).not.toContain(SECRET);
    });

    test("substitutes a Basic credential as given (no re-encoding)", async () => {
      expect((await viaProxy(url("api.test", "/quiet"), { headers: { "X-Upstream-Auth": `Basic ${BASIC_PLACEHOLDER}` } })).status).toBe(200);
      expect(upstream.requests.at(-1)!.headers["x-upstream-auth"]).toBe(`Basic ${BASIC_SECRET}`);
    });

    test("a request without placeholders passes unchanged, audited as allow", async () => {
      const events = await auditsOf(async () => {
        const response = await viaProxy(url("api.test", "/echo"), { headers: { Authorization: "Bearer own-token" } });
        expect((await echoOf(response)).headers.authorization).toBe("Bearer own-token");
      });
      expect(events[0]).toMatchObject({ decision: "allow", reason: "allowlisted", status: 200 });
      expect(events[0]!.credentialId).toBeUndefined();
    });

    test("a credential scoped to another host is injected there only", async () => {
      const there = await viaProxy(url("other.test", "/quiet"), { headers: { "X-Api-Key": SCOPED_PLACEHOLDER } });
      expect(there.status).toBe(200);
      expect(upstream.requests.at(-1)!.headers["x-api-key"]).toBe("scoped-secret");
      const here = await viaProxy(url("api.test", "/echo"), { headers: { "X-Api-Key": SCOPED_PLACEHOLDER } });
      expect(here.status).toBe(403);
    });

    test("an unavailable secret refuses the request", async () => {
      const events = await auditsOf(async () => {
        const response = await viaProxy(url("api.test", "/echo"), { headers: { "X-Broken": BROKEN_PLACEHOLDER } });
        expect(response.status).toBe(502);
      });
      expect(events[0]).toMatchObject({ decision: "deny", reason: "credential unavailable", credentialId: "broken", status: 502 });
    });

    test("keeps one tunnel and one upstream connection across requests (keep-alive)", async () => {
      const tunnel = await openTunnel(proxyPort, `api.test:${upstream.port}`, { servername: "api.test", ca: runtime.authority.certificatePem });
      const ports: number[] = [];
      for (let i = 0; i < 3; i++) {
        const response = await rawExchange(tunnel, [`GET /quiet?i=${i} HTTP/1.1\r\nHost: api.test:${upstream.port}\r\nAuthorization: Bearer ${BEARER_PLACEHOLDER}\r\n\r\n`]);
        expect(response.status).toBe(200);
        const echoed = JSON.parse(response.body);
        expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${SECRET}`);
        ports.push(echoed.remotePort);
      }
      expect(new Set(ports).size).toBe(1);
      tunnel.destroy();
    });

    test("an API that echoes the injected credential back is cut off before any byte of it reaches the client", async () => {
      for (const [path, framing] of [["/echo", "length"], ["/reflect-chunked", "chunked, split across chunks"]] as const) {
        const events = await auditsOf(async () => {
          const tunnel = await openTunnel(proxyPort, `api.test:${upstream.port}`, { servername: "api.test", ca: runtime.authority.certificatePem });
          let received = "";
          tunnel.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
          const closed = new Promise((resolve) => tunnel.once("close", resolve));
          tunnel.write(`GET ${path} HTTP/1.1\r\nHost: api.test:${upstream.port}\r\nAuthorization: Bearer ${BEARER_PLACEHOLDER}\r\n\r\n`);
          await closed;
          // The head may have gone out; the body stops before the credential begins.
          expect({ framing, leaked: received.includes(SECRET.slice(0, 4)) }).toEqual({ framing, leaked: false });
        });
        expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${SECRET}`);
        expect(events[0]).toMatchObject({ decision: "deny", reason: "credential in the response", credentialId: "bearer" });
      }
    });

    test("a compressed answer to a credentialed request is refused: it could hide the credential", async () => {
      const events = await auditsOf(async () => {
        const response = await viaProxy(url("api.test", "/gzip"), { headers: { Authorization: `Bearer ${BEARER_PLACEHOLDER}` } });
        expect(response.status).toBe(502);
      });
      expect(events[0]).toMatchObject({ decision: "deny", reason: "credential in the response" });
      // Without a credential the same answer passes untouched.
      expect((await viaProxy(url("api.test", "/gzip"))).status).toBe(200);
    });

    test("an upstream that closed between requests is reconnected, to the address checked at CONNECT", async () => {
      let resolutions = 0;
      const port = await startProxy({ resolve: async (host) => (resolutions++, resolver(host)) });
      const tunnel = await openTunnel(port, `oneshot.test:${oneShot.port}`, { servername: "oneshot.test", ca: runtime.authority.certificatePem });
      const connectionsBefore = oneShot.received.length;
      for (let i = 0; i < 2; i++) {
        const response = await rawExchange(tunnel, [`GET / HTTP/1.1\r\nHost: oneshot.test:${oneShot.port}\r\n\r\n`]);
        expect(response.body).toBe("ok");
        await Bun.sleep(50); // the upstream's close arrives
      }
      tunnel.destroy();
      expect(oneShot.received.length - connectionsBefore).toBe(1); // the first connection was opened with the tunnel
      expect(resolutions).toBe(1);
    });
  });

  describe("placeholder exfiltration", () => {
    const refusedWith = async (init: RequestInit, path = "/echo") => {
      const before = upstream.requests.length;
      const events = await auditsOf(async () => {
        const response = await viaProxy(url("api.test", path), init);
        expect(response.status).toBe(403);
      });
      expect(upstream.requests.length).toBe(before);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ decision: "deny", reason: "placeholder exfiltration", host: "api.test", status: 403 });
      return events[0]!;
    };

    test("in another header", async () => {
      await refusedWith({ headers: { "X-Leak": BEARER_PLACEHOLDER } });
      await refusedWith({ headers: { Cookie: `session=${BEARER_PLACEHOLDER}` } });
    });

    test("in its header but not in its exact format", async () => {
      await refusedWith({ headers: { Authorization: `Token ${BEARER_PLACEHOLDER}` } });
      await refusedWith({ headers: { Authorization: `Bearer ${BEARER_PLACEHOLDER} extra` } });
    });

    test("a placeholder no binding owns", async () => {
      await refusedWith({ headers: { Authorization: `Bearer ${UNKNOWN_PLACEHOLDER}` } });
    });

    test("in the URL, plain, upper-cased or percent-encoded", async () => {
      const event = await refusedWith({}, `/echo?key=${BEARER_PLACEHOLDER}`);
      expect(event.path).toBe("/echo?key=");
      await refusedWith({}, `/echo/${BEARER_PLACEHOLDER.toUpperCase()}`);
      await refusedWith({}, `/echo?key=%67igph-${BEARER_PLACEHOLDER.slice(6)}`);
    });

    test("in the body", async () => {
      await refusedWith({ method: "POST", headers: { Authorization: `Bearer ${BEARER_PLACEHOLDER}` }, body: JSON.stringify({ token: BEARER_PLACEHOLDER }) });
    });

    test("split across body chunks: refused, and no byte of it reaches the upstream", async () => {
      const authority = `record.test:${recording.port}`;
      const [front, back] = [BEARER_PLACEHOLDER.slice(0, 17), BEARER_PLACEHOLDER.slice(17)];
      const chunked = async () => {
        const tunnel = await openTunnel(proxyPort, authority, { servername: "record.test", ca: runtime.authority.certificatePem });
        const head = `POST /upload HTTP/1.1\r\nHost: ${authority}\r\nTransfer-Encoding: chunked\r\n\r\n`;
        const first = `{"padding":"${"x".repeat(100)}","token":"${front}`;
        return rawExchange(tunnel, [head + `${first.length.toString(16)}\r\n${first}\r\n`, `${back.length.toString(16)}\r\n${back}\r\n`, "0\r\n\r\n"]);
      };
      const withLength = async () => {
        const tunnel = await openTunnel(proxyPort, authority, { servername: "record.test", ca: runtime.authority.certificatePem });
        const body = [`token=${front}`, `${back}&more=1`];
        const head = `POST /upload HTTP/1.1\r\nHost: ${authority}\r\nContent-Length: ${body.join("").length}\r\n\r\n`;
        return rawExchange(tunnel, [head + body[0], body[1]!]);
      };
      for (const attempt of [chunked, withLength]) {
        const events = await auditsOf(async () => expect((await attempt()).status).toBe(403));
        expect(events[0]).toMatchObject({ decision: "deny", reason: "placeholder exfiltration", host: "record.test" });
      }
      const sent = Buffer.concat(recording.received).toString("latin1");
      expect(sent).toContain("POST /upload"); // the head went ahead of the body
      expect(sent).not.toContain("gigph");
      expect(sent).not.toContain(front.slice(0, 3));
    });
  });

  describe("tunnel refusals", () => {
    const refusedConnect = async (authority: string, status: number, reason: string, options: { localAddress?: string; request?: string; port?: number } = {}) => {
      const events = await auditsOf(async () => {
        const answer = await sendConnect(options.port ?? proxyPort, authority, options);
        expect(answer.status).toBe(status);
        answer.socket.destroy();
      });
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ decision: "deny", reason });
      return events[0]!;
    };

    test("a host not on the allowlist", async () => {
      const event = await refusedConnect(`unlisted.test:${upstream.port}`, 403, "not allowlisted");
      expect(event).toMatchObject({ ...IDENTITY, host: "unlisted.test", port: upstream.port, sourceIp: "127.0.0.1" });
    });

    test("an allowlisted host on another port", async () => {
      await refusedConnect("api.test:443", 403, "not allowlisted");
      await refusedConnect(`api.test:${upstream.port + 1}`, 403, "not allowlisted");
    });

    test("wildcards: one label for *., never deeper; ** any depth; never the bare domain", async () => {
      const response = await viaProxy(url("sub.api.test", "/echo"));
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      await refusedConnect(`a.b.api.test:${upstream.port}`, 403, "not allowlisted");
    });

    test("a denylisted host, even when allowlisted, and its subdomains", async () => {
      await refusedConnect(`evil.test:${upstream.port}`, 403, "denylisted");
      await refusedConnect(`deep.sub.evil.test:${upstream.port}`, 403, "denylisted");
    });

    test("an unknown source address", async () => {
      const event = await refusedConnect(`api.test:${upstream.port}`, 403, "unknown source", { localAddress: "127.0.0.2" });
      expect(event.sourceIp).toBe("127.0.0.2");
      expect(event.serverId).toBeUndefined();
    });

    test("anything but CONNECT is 405", async () => {
      const event = await refusedConnect("", 405, "not CONNECT", { request: `GET http://api.test/ HTTP/1.1\r\nHost: api.test\r\n\r\n` });
      expect(event.method).toBe("GET");
    });

    test("malformed CONNECT requests and IP literals", async () => {
      await refusedConnect("", 400, "bad request", { request: "CONNECT api.test:443 HTTP/1.1\nHost: x\n\n" });
      await refusedConnect("127.0.0.1:443", 400, "invalid host");
      await refusedConnect("[::1]:443", 400, "invalid host");
      await refusedConnect("api.test", 400, "invalid host");
      await refusedConnect("api..test:443", 400, "invalid host");
      await refusedConnect("", 431, "bad request", { request: `CONNECT api.test:443 HTTP/1.1\r\nX: ${"a".repeat(70_000)}\r\n\r\n` });
    });

    test("SNI other than the CONNECT host closes the tunnel", async () => {
      const events = await auditsOf(async () => {
        const tunnel = await openTunnel(proxyPort, `api.test:${upstream.port}`, { servername: "other.test", ca: runtime.authority.certificatePem });
        await new Promise((resolve) => (tunnel.destroyed ? resolve(undefined) : tunnel.once("close", resolve)));
      });
      expect(events).toEqual([expect.objectContaining({ decision: "deny", reason: "SNI mismatch", host: "api.test" })]);
    });

    test("a Host header other than the CONNECT host (domain fronting) is 421", async () => {
      const tunnel = await openTunnel(proxyPort, `api.test:${upstream.port}`, { servername: "api.test", ca: runtime.authority.certificatePem });
      const events = await auditsOf(async () => {
        const response = await rawExchange(tunnel, [`GET /echo HTTP/1.1\r\nHost: other.test:${upstream.port}\r\n\r\n`]);
        expect(response.status).toBe(421);
      });
      expect(events).toEqual([expect.objectContaining({ decision: "deny", reason: "Host mismatch", method: "GET", path: "/echo", status: 421 })]);
    });

    test("protocol upgrades are refused", async () => {
      const tunnel = await openTunnel(proxyPort, `api.test:${upstream.port}`, { servername: "api.test", ca: runtime.authority.certificatePem });
      const response = await rawExchange(tunnel, [`GET /ws HTTP/1.1\r\nHost: api.test:${upstream.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`]);
      expect(response.status).toBe(501);
    });

    test("anti-SSRF: loopback without the operator's allowance, metadata, private and IPv4-mapped answers", async () => {
      const strictPort = await startProxy({ allowAddresses: [] });
      await refusedConnect(`api.test:${upstream.port}`, 403, "forbidden address loopback", { port: strictPort });
      await refusedConnect(`meta.test:${upstream.port}`, 403, "forbidden address cloud metadata");
      await refusedConnect(`mapped.test:${upstream.port}`, 403, "forbidden address private");
      // One bad answer among good ones is enough.
      await refusedConnect(`mixed.test:${upstream.port}`, 403, "forbidden address private");
    });

    test("an upstream certificate the proxy does not trust", async () => {
      const untrustingPort = await startProxy({ upstreamCaCertificates: [] });
      await refusedConnect(`api.test:${upstream.port}`, 502, "upstream TLS failed", { port: untrustingPort });
    });

    test("too many tunnels for one identity is 429", async () => {
      const limitedPort = await startProxy({ limits: { maxTunnelsPerIdentity: 2 } });
      const open = [await sendConnect(limitedPort, `api.test:${upstream.port}`), await sendConnect(limitedPort, `api.test:${upstream.port}`)];
      expect(open.map((answer) => answer.status)).toEqual([200, 200]);
      await refusedConnect(`api.test:${upstream.port}`, 429, "too many tunnels", { port: limitedPort });
      for (const answer of open) answer.socket.destroy();
    });
  });

  describe("streaming", () => {
    test("server-sent events arrive as they are sent", async () => {
      const response = await viaProxy(url("api.test", "/sse"));
      const reader = response.body!.getReader();
      const first = await reader.read();
      // The upstream holds the rest of the stream until released: the first event came through alone.
      expect(new TextDecoder().decode(first.value)).toBe("data: first\n\n");
      upstream.releaseSse();
      let rest = "";
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
      expect(rest).toBe("data: second\n\ndata: third\n\n");
    });

    test("chunked and close-delimited responses", async () => {
      const chunked = await viaProxy(url("api.test", "/bytes?n=300000&chunked"));
      expect(chunked.headers.get("transfer-encoding")).toBe("chunked");
      expect((await chunked.arrayBuffer()).byteLength).toBe(300_000);
      const closing = await viaProxy(`https://close.test:${closeDelimited.port}/`);
      expect(await closing.text()).toBe("first part, second part");
    });

    // Bounded memory is flow control: while the receiving end stops reading, the sending end
    // must stall too, with at most socket buffers in flight, not the rest of the body.
    // Raw tunnels on the client side: Bun's fetch through a proxy reads and sends ahead of
    // its caller without backpressure, which would hide what the proxy does.
    test("50 MB down and 50 MB up stream through, the proxy never running ahead of a stalled reader", async () => {
      const size = 50 * MiB;
      const tunnel = await openTunnel(proxyPort, `api.test:${upstream.port}`, { servername: "api.test", ca: runtime.authority.certificatePem });
      tunnel.write(`GET /bytes?n=${size} HTTP/1.1\r\nHost: api.test:${upstream.port}\r\n\r\n`);
      let received = 0;
      let aheadWhileStalled = -1;
      await new Promise<void>((resolve, reject) => {
        tunnel.on("data", (chunk: Buffer) => {
          received += chunk.length;
          if (aheadWhileStalled === -1 && received >= MiB) {
            aheadWhileStalled = -2;
            tunnel.pause();
            setTimeout(() => {
              aheadWhileStalled = upstream.produced.bytes - received;
              tunnel.resume();
            }, 300);
          }
          if (received >= size) resolve();
        });
        tunnel.once("close", () => reject(new Error(`the tunnel closed after ${received} bytes`)));
      });
      tunnel.destroy();
      expect(received).toBeGreaterThan(size);
      expect(aheadWhileStalled).toBeGreaterThanOrEqual(0);
      expect(aheadWhileStalled).toBeLessThan(MAX_IN_FLIGHT);

      const upload = await openTunnel(proxyPort, `api.test:${upstream.port}`, { servername: "api.test", ca: runtime.authority.certificatePem });
      const answer = rawExchange(upload, []);
      upload.write(`POST /quiet?pause=300 HTTP/1.1\r\nHost: api.test:${upstream.port}\r\nAuthorization: Bearer ${BEARER_PLACEHOLDER}\r\nContent-Length: ${size}\r\n\r\n`);
      let sent = 0;
      let uploadAhead = -1;
      const measure = (async () => {
        while (upstream.consumed.bytes < MiB) await Bun.sleep(5);
        await Bun.sleep(200); // the upstream reads nothing for 300 ms
        uploadAhead = sent - upstream.consumed.bytes;
      })();
      for await (const chunk of patternStream(size)) {
        sent += chunk.length;
        if (!upload.write(chunk)) await new Promise((resolve) => upload.once("drain", resolve));
      }
      await measure;
      const echoed = JSON.parse((await answer).body) as RecordedRequest;
      upload.destroy();
      expect(echoed.bodyBytes).toBe(size);
      expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${SECRET}`);
      const expected = new Bun.CryptoHasher("sha256");
      for await (const chunk of patternStream(size)) expected.update(chunk);
      expect(echoed.bodySha256).toBe(expected.digest("hex"));
      expect(uploadAhead).toBeGreaterThanOrEqual(0);
      expect(uploadAhead).toBeLessThan(MAX_IN_FLIGHT);
    }, 60_000);
  });

  describe("certificates and lifecycle", () => {
    const peerFingerprint = async (port: number, host: string) => {
      const tunnel: TLSSocket = await openTunnel(port, `${host}:${upstream.port}`, { servername: host, ca: runtime.authority.certificatePem });
      const fingerprint = tunnel.getPeerX509Certificate()?.fingerprint256;
      tunnel.destroy();
      return fingerprint;
    };

    test("leaf certificates are minted per host, reused from a bounded cache", async () => {
      const cachedProxy = createEgressProxy(proxyOptions({ limits: { leafCacheSize: 2 } }));
      extraProxies.push(cachedProxy);
      const port = await cachedProxy.listen("127.0.0.1", 0);
      const first = await peerFingerprint(port, "api.test");
      expect(await peerFingerprint(port, "api.test")).toBe(first!);
      expect(await peerFingerprint(port, "other.test")).not.toBe(first!);
      await peerFingerprint(port, "sub.api.test"); // evicts api.test
      expect(cachedProxy.stats().cachedCertificates).toBe(2);
      expect(await peerFingerprint(port, "api.test")).not.toBe(first!);
    });

    // The runtime CA carries critical name constraints (no IP addresses): every client family must still accept its leaves.
    test("OpenSSL, Python and Node clients verify the runtime CA's leaves through the proxy", async () => {
      const caFile = join(tempDir("gigmcp-runtime-ca-"), "ca.pem");
      writeFileSync(caFile, runtime.authority.certificatePem);
      const output = async (command: string[], input = "") => {
        const child = Bun.spawn(command, { stdin: new Blob([input]), stdout: "pipe", stderr: "pipe" });
        const [out, err] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
        return `${out}\n${err}`;
      };
      const request = `GET /echo HTTP/1.1\r\nHost: api.test:${upstream.port}\r\nConnection: close\r\n\r\n`;
      const openssl = await output(
        ["openssl", "s_client", "-proxy", `127.0.0.1:${proxyPort}`, "-connect", `api.test:${upstream.port}`, "-servername", "api.test",
          "-CAfile", caFile, "-verify_return_error", "-verify_hostname", "api.test", "-quiet", "-ign_eof"],
        request,
      );
      expect(openssl).toContain("HTTP/1.1 200 OK");
      const python = await output(["python3", "-c", [
        "import http.client, ssl, sys",
        "connection = http.client.HTTPSConnection('127.0.0.1', int(sys.argv[2]), context=ssl.create_default_context(cafile=sys.argv[1]))",
        "connection.set_tunnel('api.test', int(sys.argv[3]))",
        "connection.request('GET', '/echo')",
        "print('status', connection.getresponse().status)",
      ].join("\n"), caFile, String(proxyPort), String(upstream.port)]);
      expect(python).toContain("status 200");
      const node = await output([NODE, "-e", [
        "const http = require('http'), tls = require('tls'), fs = require('fs');",
        "const [ca, proxyPort, port] = process.argv.slice(1);",
        "http.request({ host: '127.0.0.1', port: +proxyPort, method: 'CONNECT', path: 'api.test:' + port }).on('connect', (_, socket) => {",
        "  const t = tls.connect({ socket, servername: 'api.test', ca: fs.readFileSync(ca) }, () => t.end('GET /echo HTTP/1.1\\r\\nHost: api.test:' + port + '\\r\\nConnection: close\\r\\n\\r\\n'));",
        "  t.on('data', (d) => { console.log(d.toString().split('\\r\\n')[0]); t.destroy(); });",
        "  t.on('error', (e) => console.log('error', e.code));",
        "}).end();",
      ].join("\n"), caFile, String(proxyPort), String(upstream.port)]);
      expect(node).toContain("HTTP/1.1 200 OK");
    });

    test("a client that starts TLS before the 200 (pipelined ClientHello) is served", async () => {
      const tunnel = await openTunnelEagerly(proxyPort, `api.test:${upstream.port}`, { servername: "api.test", ca: runtime.authority.certificatePem });
      const response = await rawExchange(tunnel, [`GET /quiet HTTP/1.1\r\nHost: api.test:${upstream.port}\r\nAuthorization: Bearer ${BEARER_PLACEHOLDER}\r\n\r\n`]);
      expect(response.status).toBe(200);
      expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${SECRET}`);
      tunnel.destroy();
    });

    test("slow and idle clients are timed out", async () => {
      const port = await startProxy({ limits: { headTimeoutMs: 200, idleTimeoutMs: 300 } });
      const slow = await auditsOf(async () => {
        const answer = await sendConnect(port, "", { request: "CONNECT api.test:" });
        expect(answer.status).toBe(408);
      });
      expect(slow).toEqual([expect.objectContaining({ decision: "deny", reason: "bad request" })]);
      const tunnel = await openTunnel(port, `api.test:${upstream.port}`, { servername: "api.test", ca: runtime.authority.certificatePem });
      const started = Date.now();
      await new Promise((resolve) => tunnel.once("close", resolve));
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    });

    test("unlisten closes the tunnels accepted on that address", async () => {
      const closingProxy = createEgressProxy(proxyOptions());
      const port = await closingProxy.listen("127.0.0.1", 0);
      const tunnel = await openTunnel(port, `api.test:${upstream.port}`, { servername: "api.test", ca: runtime.authority.certificatePem });
      expect(closingProxy.stats().tunnels).toBe(1);
      const closed = new Promise((resolve) => tunnel.once("close", resolve));
      await closingProxy.unlisten("127.0.0.1");
      await closed;
      expect(closingProxy.stats().tunnels).toBe(0);
      await expect(sendConnect(port, `api.test:${upstream.port}`)).rejects.toThrow();
    });
  });
});
