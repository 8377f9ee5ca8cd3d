/**
 * Leaf certificates for tunnel hosts, minted on first use and kept in a
 * bounded LRU as ready TLS contexts (parsing a key and certificate is most of
 * the cost of a context).
 */
import { createSecureContext, type SecureContext } from "node:tls";
import type { CertificateAuthority } from "./authority.ts";

export interface LeafCache {
  /** The TLS context presenting a certificate for `host`, minted if missing or due for renewal. */
  contextFor(host: string): Promise<SecureContext>;
  /** Hosts currently cached. */
  readonly size: number;
}

interface Entry {
  context: Promise<SecureContext>;
  /** Minted afresh after this time, well before the certificate expires. */
  renewAt: number;
}

export function createLeafCache(authority: CertificateAuthority, options: { capacity: number; validityMs: number }): LeafCache {
  const entries = new Map<string, Entry>();

  function mint(host: string): Entry {
    const context = authority.issueServerCertificate(host, options.validityMs).then((issued) =>
      createSecureContext({ key: issued.privateKeyPem, cert: issued.certificatePem }),
    );
    const entry = { context, renewAt: Date.now() + options.validityMs / 2 };
    // A failed mint is not cached: the next tunnel tries again.
    context.catch(() => {
      if (entries.get(host) === entry) entries.delete(host);
    });
    return entry;
  }

  return {
    contextFor(host) {
      const cached = entries.get(host);
      const entry = cached && cached.renewAt > Date.now() ? cached : mint(host);
      // Re-inserted as the most recently used.
      entries.delete(host);
      entries.set(host, entry);
      // Maps iterate in insertion order: the first key is the least recently used.
      while (entries.size > options.capacity) entries.delete(entries.keys().next().value!);
      return entry.context;
    },
    get size() {
      return entries.size;
    },
  };
}
