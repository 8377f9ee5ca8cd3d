/** A throwaway self-signed certificate for loopback HTTPS upstreams in tests. */
import { join } from "node:path";
import { tempDir } from "./gateway.ts";

export interface TestCertificate {
  certFile: string;
  keyFile: string;
}

export function selfSignedCertificate(hosts: string[]): TestCertificate {
  const dir = tempDir("gigmcp-tls-");
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  const altNames = hosts.map((host) => (/^[\d.]+$/.test(host) ? `IP:${host}` : `DNS:${host}`)).join(",");
  const result = Bun.spawnSync([
    "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", `/CN=${hosts[0]}`, "-addext", `subjectAltName=${altNames}`,
  ]);
  if (result.exitCode !== 0) throw new Error(`openssl failed: ${result.stderr.toString()}`);
  return { certFile, keyFile };
}
