/**
 * The Docker deployment, checked without a Docker engine: the compose file
 * asks for no more privilege than documented, and every GIG_* setting the
 * images and compose file set is one the binary knows and accepts.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { loadConfig, SETTINGS } from "../src/config/index.ts";
import { ROOT } from "./helpers/gateway.ts";

const compose = parse(readFileSync(join(ROOT, "docker-compose.yml"), "utf8")) as {
  services: Record<string, { cap_add?: string[]; privileged?: boolean; security_opt?: string[]; environment?: Record<string, string>; volumes?: string[] }>;
};
const gatewayDockerfile = readFileSync(join(ROOT, "deploy/gateway.Dockerfile"), "utf8");
const knownVariables = new Set(Object.values(SETTINGS).map((setting) => setting.env));

test("the gateway gets only NET_ADMIN, never privileged mode, and only the two documented security options", () => {
  const gateway = compose.services.gateway!;
  expect(gateway.cap_add).toEqual(["NET_ADMIN"]);
  expect(gateway.privileged).toBeUndefined();
  expect(gateway.security_opt?.sort()).toEqual(["apparmor=unconfined", "seccomp=unconfined"]);
  expect(gateway.volumes).toContain("gigmcp-data:/data");
});

test("every GIG_* variable of the compose file and the gateway image is a setting of the binary, with a valid value", () => {
  const fromCompose = Object.keys(compose.services.gateway!.environment ?? {});
  const envLine = /^ENV (.+)$/m.exec(gatewayDockerfile)![1]!;
  const fromImage = Object.fromEntries(envLine.split(/\s+/).map((pair) => pair.split("=") as [string, string]));
  for (const name of [...fromCompose, ...Object.keys(fromImage)]) expect({ name, known: knownVariables.has(name) }).toEqual({ name, known: true });
  const config = loadConfig(fromImage);
  expect(config).toMatchObject({ dataDir: "/data", listen: { host: "", port: 8080 }, proxyPort: 8081, sandbox: "bwrap" });
});

test("the image runs `gigmcp serve`, a command the binary has", () => {
  expect(gatewayDockerfile).toContain('ENTRYPOINT ["/usr/local/bin/gigmcp"]');
  expect(gatewayDockerfile).toContain('CMD ["serve"]');
  const help = Bun.spawnSync([join(ROOT, "dist/gigmcp"), "serve", "--help"]);
  expect(help.exitCode).toBe(0);
  expect(help.stdout.toString()).toContain("Usage: gigmcp serve");
});

test("the dashboard's nginx sends API and MCP paths to the gateway and keeps the Host header", () => {
  const nginx = readFileSync(join(ROOT, "deploy/web.nginx.conf"), "utf8");
  expect(nginx).toMatch(/location ~ \^\/\(api\|mcp\|healthz\|readyz\)/);
  expect(nginx).toContain("proxy_pass http://gateway:8080;");
  expect(nginx).toContain("proxy_set_header Host $host;");
});

test("every base image is pinned by digest, and the build context leaves out local state and secrets", () => {
  for (const file of ["deploy/gateway.Dockerfile", "deploy/web.Dockerfile"]) {
    const bases = [...readFileSync(join(ROOT, file), "utf8").matchAll(/^FROM\s+(\S+)/gm)].map((match) => match[1]!);
    expect(bases.length).toBeGreaterThan(0);
    for (const base of bases) expect({ file, base }).toEqual({ file, base: expect.stringMatching(/^[\w./:-]+@sha256:[0-9a-f]{64}$/) });
  }
  const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n");
  for (const path of ["master.key", "data", "node_modules", "dist", ".git"]) expect(ignored).toContain(path);
});
