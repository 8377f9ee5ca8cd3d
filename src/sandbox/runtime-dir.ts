/**
 * Files every sandbox mounts read-only: the bootstrap binary (launcher on the
 * host, init inside) and the generated /etc files. They live in a fresh
 * directory the sandboxes' unprivileged host uids can read but not change;
 * the data dir stays private to the gateway.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bootstrapBinary from "../../bootstrap-zig/zig-out/bin/gigmcp-bootstrap" with { type: "file" };
import { generatedEtc, SYSTEM_CA_BUNDLE } from "./bwrap.ts";

export interface RuntimeDir {
  /** The bootstrap binary: `launch` mode on the host, `init` mode inside. */
  launcher: string;
  etcDir: string;
  /** The system roots plus the proxy's CA, and the CA alone, when the proxy has one. */
  trust: { bundle: string; proxyCa: string } | undefined;
  remove(): void;
}

export async function createRuntimeDir(caCertificatePem?: string): Promise<RuntimeDir> {
  const dir = mkdtempSync(join(tmpdir(), "gigmcp-runtime-"));
  chmodSync(dir, 0o755);
  const launcher = join(dir, "gigmcp-bootstrap");
  await Bun.write(launcher, Bun.file(bootstrapBinary));
  chmodSync(launcher, 0o755);
  const etcDir = join(dir, "etc");
  mkdirSync(etcDir, { mode: 0o755 });
  for (const [name, content] of Object.entries(generatedEtc())) writeFileSync(join(etcDir, name), content, { mode: 0o644 });
  let trust: RuntimeDir["trust"];
  if (caCertificatePem !== undefined) {
    const system = existsSync(SYSTEM_CA_BUNDLE) ? readFileSync(SYSTEM_CA_BUNDLE, "utf8") : "";
    trust = { bundle: join(dir, "ca-bundle.crt"), proxyCa: join(dir, "gigmcp-ca.pem") };
    writeFileSync(trust.bundle, `${system.trimEnd()}\n${caCertificatePem.trim()}\n`, { mode: 0o644 });
    writeFileSync(trust.proxyCa, `${caCertificatePem.trim()}\n`, { mode: 0o644 });
  }
  return { launcher, etcDir, trust, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
