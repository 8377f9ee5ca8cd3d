/** The bundled servers over stdio, driven by a real SDK client. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import net from "node:net";
import { BUN, MAIN, text } from "./helpers/gateway.ts";
import { selfSignedCertificate } from "./helpers/tls.ts";

async function bundled(name: string, env: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: "test", version: "1" });
  await client.connect(new StdioClientTransport({ command: BUN, args: [MAIN, "mcp", name], env: { PATH: process.env.PATH!, ...env }, stderr: "ignore" }));
  return client;
}

describe("echo", () => {
  let echo: Client;
  beforeAll(async () => (echo = await bundled("echo")));
  afterAll(() => echo.close());

  test("lists its tools with JSON Schemas from valibot", async () => {
    const { tools } = await echo.listTools();
    expect(tools.map((tool) => tool.name)).toEqual(["echo", "add", "slow"]);
    expect(tools[1]!.inputSchema).toMatchObject({ type: "object", properties: { a: { type: "number" }, b: { type: "number" } }, required: ["a", "b"] });
  });

  test("validates arguments and names the bad field", async () => {
    const result = await echo.callTool({ name: "add", arguments: { a: 1 } });
    expect(result.isError).toBe(true);
    expect(text(result)).toContain("b:");
    expect((await echo.callTool({ name: "echo", arguments: { message: "ok" } })).isError).toBeUndefined();
  });
});

describe("fetch", () => {
  let upstream: ReturnType<typeof Bun.serve>;
  let fetchServer: Client;

  beforeAll(async () => {
    upstream = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(request) {
        const path = new URL(request.url).pathname;
        if (path === "/page") {
          return new Response("<html><head><script>evil()</script></head><body><h1>Title</h1><p>Some <a href='/x'>link</a> text.</p></body></html>", {
            headers: { "content-type": "text/html; charset=utf-8" },
          });
        }
        if (path === "/whoami") return new Response(request.headers.get("authorization") ?? "anonymous", { headers: { "content-type": "text/plain" } });
        if (path === "/long") return new Response("abcdefghij".repeat(10), { headers: { "content-type": "text/plain" } });
        if (path === "/binary") return new Response(new Uint8Array([0, 1, 2]), { headers: { "content-type": "image/png" } });
        return new Response("no such page", { status: 404, statusText: "Not Found" });
      },
    });
    fetchServer = await bundled("fetch");
  });

  afterAll(async () => {
    await fetchServer.close();
    upstream.stop(true);
  });

  const call = (args: Record<string, unknown>) => fetchServer.callTool({ name: "fetch", arguments: args });

  test("FETCH_BEARER_TOKEN is sent as a bearer Authorization header, and nothing is sent without it", async () => {
    expect(text(await call({ url: `http://127.0.0.1:${upstream.port}/whoami` }))).toBe("anonymous");
    const withToken = await bundled("fetch", { FETCH_BEARER_TOKEN: "gigph-0123456789abcdef0123456789abcdef" });
    try {
      const result = await withToken.callTool({ name: "fetch", arguments: { url: `http://127.0.0.1:${upstream.port}/whoami` } });
      expect(text(result)).toBe("Bearer gigph-0123456789abcdef0123456789abcdef");
    } finally {
      await withToken.close();
    }
  });

  test("HTML becomes markdown without scripts", async () => {
    const result = await call({ url: `http://127.0.0.1:${upstream.port}/page` });
    expect(text(result)).toBe("# Title\n\nSome [link](/x) text.");
    expect(text(await call({ url: `http://127.0.0.1:${upstream.port}/page`, raw: true }))).toContain("<h1>Title</h1>");
  });

  test("long content is paged with a marker saying how to read on", async () => {
    const first = text(await call({ url: `http://127.0.0.1:${upstream.port}/long`, max_length: 30 }));
    expect(first).toStartWith("abcdefghijabcdefghijabcdefghij\n\n[truncated: 70 more characters; call again with start_index=30]");
    const last = text(await call({ url: `http://127.0.0.1:${upstream.port}/long`, max_length: 30, start_index: 90 }));
    expect(last).toBe("abcdefghij");
  });

  test("HTTP errors, binary content and bad URLs are tool errors", async () => {
    const missing = await call({ url: `http://127.0.0.1:${upstream.port}/missing` });
    expect(missing.isError).toBe(true);
    expect(text(missing)).toContain("answered 404");
    const binary = await call({ url: `http://127.0.0.1:${upstream.port}/binary` });
    expect(text(binary)).toContain("image/png, which is not text");
    const file = await call({ url: "file:///etc/passwd" });
    expect(file.isError).toBe(true);
    expect(text(file)).toContain("only http and https URLs");
  });

  test("HTTPS goes through HTTPS_PROXY as a CONNECT tunnel", async () => {
    const certificate = selfSignedCertificate(["api.upstream.test"]);
    const secure = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      tls: { cert: Bun.file(certificate.certFile), key: Bun.file(certificate.keyFile) },
      fetch: () => new Response("secret page", { headers: { "content-type": "text/plain" } }),
    });
    const connects: string[] = [];
    const proxy = net.createServer((socket) => {
      socket.once("data", (head) => {
        connects.push(head.toString().split("\r\n")[0]!);
        const tunnel = net.connect(secure.port!, "127.0.0.1", () => {
          socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
          socket.pipe(tunnel).pipe(socket);
        });
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const proxied = await bundled("fetch", {
      HTTPS_PROXY: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`,
      SSL_CERT_FILE: certificate.certFile,
    });
    try {
      // The name does not resolve anywhere: only the proxy can have reached it.
      const result = await proxied.callTool({ name: "fetch", arguments: { url: `https://api.upstream.test:${secure.port}/doc` } });
      expect(text(result)).toBe("secret page");
      expect(connects).toEqual([`CONNECT api.upstream.test:${secure.port} HTTP/1.1`]);
    } finally {
      await proxied.close();
      proxy.close();
      secure.stop(true);
    }
  });
});
