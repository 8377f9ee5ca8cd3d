/**
 * The runtime CA that sandboxes trust, and the short-lived leaf certificates
 * the egress proxy presents inside a tunnel. ECDSA P-256 throughout: small
 * keys, fast to generate and sign, accepted by every TLS client we target.
 */
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";

export interface IssuedCertificate {
  certificatePem: string;
  privateKeyPem: string;
  notAfter: Date;
}

export interface CertificateAuthority {
  readonly certificatePem: string;
  readonly notAfter: Date;
  /**
   * Mints a server certificate for `host` (a DNS name), valid from now for
   * `validityMs` but never past the CA's own expiry.
   */
  issueServerCertificate(host: string, validityMs: number): Promise<IssuedCertificate>;
}

const EC_KEY = { name: "ECDSA", namedCurve: "P-256" };
const OID = {
  commonName: "2.5.4.3",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  nameConstraints: "2.5.29.30",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;
/** Bits of the keyUsage BIT STRING, numbered from the most significant bit of the first byte. */
const KEY_USAGE = { digitalSignature: 0x80, keyCertSign: 0x04, cRLSign: 0x02 } as const;
const CA_VALIDITY_MS = 5 * 365 * 24 * 3600_000;
/** Leaves and the CA start an hour in the past, so a client with a slightly slow clock accepts them. */
const CLOCK_SKEW_MS = 3600_000;

/**
 * Creates a self-signed CA. The caller keeps `privateKeyPkcs8` sealed and
 * hands both back to loadCertificateAuthority() on the next start.
 */
export async function createCertificateAuthority(
  options: { commonName?: string } = {},
): Promise<{ authority: CertificateAuthority; privateKeyPkcs8: Uint8Array }> {
  const keys = (await crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const name = distinguishedName(options.commonName ?? "Gig'MCP egress proxy CA");
  const certificate = new pkijs.Certificate();
  certificate.version = 2;
  certificate.serialNumber = randomSerialNumber();
  certificate.issuer = name;
  certificate.subject = name;
  certificate.notBefore = certificateTime(new Date(now - CLOCK_SKEW_MS));
  certificate.notAfter = certificateTime(new Date(now + CA_VALIDITY_MS));
  await certificate.subjectPublicKeyInfo.importKey(keys.publicKey);
  const keyId = await subjectKeyIdentifier(certificate);
  certificate.extensions = [
    extension(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: true, pathLenConstraint: 0 }).toSchema()),
    extension(OID.keyUsage, true, keyUsage(KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign)),
    extension(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: keyId })),
    extension(OID.nameConstraints, true, dnsNamesOnly()),
  ];
  await certificate.sign(keys.privateKey, "SHA-256");
  const privateKeyPkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { authority: await authorityFrom(certificate, keys.privateKey), privateKeyPkcs8 };
}

/** Restores a CA made by createCertificateAuthority(); throws if the key does not belong to the certificate. */
export async function loadCertificateAuthority(certificatePem: string, privateKeyPkcs8: Uint8Array): Promise<CertificateAuthority> {
  const certificate = pkijs.Certificate.fromBER(fromPem(certificatePem, "CERTIFICATE"));
  const basic = certificate.extensions?.find((item) => item.extnID === OID.basicConstraints)?.parsedValue;
  if (!(basic instanceof pkijs.BasicConstraints) || !basic.cA) {
    throw new Error("the egress proxy CA certificate is not a CA (no basicConstraints cA): create a new one");
  }
  if (certificate.notAfter.value.getTime() <= Date.now()) {
    throw new Error(`the egress proxy CA expired on ${certificate.notAfter.value.toISOString()}: create a new one`);
  }
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", new Uint8Array(privateKeyPkcs8), EC_KEY, false, ["sign"]);
  } catch (error) {
    throw new Error(`the egress proxy CA key is not an ECDSA P-256 PKCS#8 key: ${(error as Error).message}`);
  }
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, probe);
  const publicKey = await certificate.getPublicKey({ algorithm: { algorithm: EC_KEY, usages: ["verify"] } });
  if (!(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, publicKey, signature, probe))) {
    throw new Error("the egress proxy CA key does not match its certificate: restore the matching pair or create a new CA");
  }
  return authorityFrom(certificate, privateKey);
}

async function authorityFrom(certificate: pkijs.Certificate, privateKey: CryptoKey): Promise<CertificateAuthority> {
  const keyId = await subjectKeyIdentifier(certificate);
  const notAfter = certificate.notAfter.value;
  const certificatePem = toPem(certificate.toSchema().toBER(false), "CERTIFICATE");

  async function issueServerCertificate(host: string, validityMs: number): Promise<IssuedCertificate> {
    const keys = (await crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"])) as CryptoKeyPair;
    const now = Date.now();
    const leafNotAfter = new Date(Math.min(now + validityMs, notAfter.getTime()));
    const leaf = new pkijs.Certificate();
    leaf.version = 2;
    leaf.serialNumber = randomSerialNumber();
    leaf.issuer = certificate.subject;
    leaf.subject = distinguishedName(host);
    leaf.notBefore = certificateTime(new Date(now - CLOCK_SKEW_MS));
    leaf.notAfter = certificateTime(leafNotAfter);
    await leaf.subjectPublicKeyInfo.importKey(keys.publicKey);
    leaf.extensions = [
      extension(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: false }).toSchema()),
      extension(OID.keyUsage, true, keyUsage(KEY_USAGE.digitalSignature)),
      extension(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID.serverAuth] }).toSchema()),
      extension(OID.subjectAltName, false, new pkijs.AltName({ altNames: [new pkijs.GeneralName({ type: 2, value: host })] }).toSchema()),
      extension(OID.authorityKeyIdentifier, false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: keyId }) }).toSchema()),
    ];
    await leaf.sign(privateKey, "SHA-256");
    return {
      certificatePem: toPem(leaf.toSchema().toBER(false), "CERTIFICATE"),
      privateKeyPem: toPem(await crypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY"),
      notAfter: leafNotAfter,
    };
  }

  return { certificatePem, notAfter, issueServerCertificate };
}

/**
 * Name constraints: the CA may certify DNS names only, never an IP address
 * (excluded 0.0.0.0/0 and ::/0). The proxy only mints for DNS names, and a
 * leaked key then cannot vouch for an address.
 */
function dnsNamesOnly(): asn1js.Sequence {
  const everyAddress = (bytes: number) => new pkijs.GeneralSubtree({
    base: new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: new Uint8Array(bytes * 2).buffer }) }),
  });
  return new pkijs.NameConstraints({ excludedSubtrees: [everyAddress(4), everyAddress(16)] }).toSchema();
}

function extension(extnID: string, critical: boolean, value: asn1js.BaseBlock): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) });
}

function keyUsage(bits: number): asn1js.BitString {
  // One byte of flags; unused trailing bits are counted so DER stays minimal.
  let unused = 0;
  while (unused < 7 && (bits & (1 << unused)) === 0) unused++;
  return new asn1js.BitString({ valueHex: new Uint8Array([bits]).buffer, unusedBits: unused });
}

function distinguishedName(commonName: string): pkijs.RelativeDistinguishedNames {
  return new pkijs.RelativeDistinguishedNames({
    typesAndValues: [new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: commonName }) })],
  });
}

/** RFC 5280: UTCTime through 2049, GeneralizedTime from 2050. */
function certificateTime(date: Date): pkijs.Time {
  return new pkijs.Time({ type: date.getUTCFullYear() < 2050 ? pkijs.TimeType.UTCTime : pkijs.TimeType.GeneralizedTime, value: date });
}

function randomSerialNumber(): asn1js.Integer {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  // Positive and without a leading zero byte, as DER INTEGER wants.
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return new asn1js.Integer({ valueHex: bytes.buffer });
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey bits. */
async function subjectKeyIdentifier(certificate: pkijs.Certificate): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-1", new Uint8Array(certificate.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView));
}

function toPem(der: ArrayBuffer, label: string): string {
  const base64 = Buffer.from(der).toString("base64");
  return `-----BEGIN ${label}-----\n${base64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END ${label}-----\n`;
}

function fromPem(pem: string, label: string): ArrayBuffer {
  const match = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(pem);
  if (!match) throw new Error(`expected a PEM ${label}`);
  const der = Buffer.from(match[1]!.replace(/\s+/g, ""), "base64");
  return der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer;
}
