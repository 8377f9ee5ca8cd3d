/**
 * Secrets at rest: a master keyring, envelope encryption bound to each
 * secret's context, credential values, and key rotation. Plaintext secrets
 * leave this module only as return values, never in errors or logs.
 */
import type { Config } from "../config/index.ts";
import { loadKeyring } from "./keyring.ts";
import { createVault, type Vault } from "./vault.ts";

export { createVault, VaultError, type SealContext, type SealedSecret, type Vault } from "./vault.ts";
export {
  DEVELOPMENT_KEY_FILE,
  KEY_ID_PATTERN,
  loadKeyring,
  parseKeyringFile,
  parseKeyringList,
  readKeyringFile,
  usesDevelopmentKey,
  type Keyring,
  type LoadedKeyring,
  type MasterKey,
} from "./keyring.ts";
export {
  blobContext,
  credentialContext,
  InvalidSecretError,
  oauthAppContext,
  oauthConnectionContext,
  oauthFlowContext,
  openCredential,
  parseCredentialSecret,
  sealCredential,
  type CredentialSecret,
} from "./credentials.ts";
export { chainAudit } from "./audit-key.ts";
export { firstUnopenableRecord, rotateSealedRecords, sealedKeyUsage, type RotationReport } from "./rotation.ts";

/** The vault of the configured keyring; `development` tells whether the data dir's generated key is in use. */
export function openVault(
  config: Pick<Config, "masterKey" | "masterKeyFile" | "dataDir">,
  warn?: (message: string) => void,
): { vault: Vault; development: boolean } {
  const { keyring, development } = loadKeyring(config, warn);
  const vault = createVault(keyring);
  // The vault holds its own copies.
  for (const entry of keyring.keys) entry.key.fill(0);
  return { vault, development };
}
