/** Password hashing (argon2id) and the password policy. */

/** OWASP's argon2id baseline: 19 MiB, 2 passes. */
const ARGON2 = { algorithm: "argon2id", memoryCost: 19_456, timeCost: 2 } as const;

export const MIN_PASSWORD_LENGTH = 12;
/** Long enough for any passphrase, short enough that hashing cannot be used to burn CPU. */
export const MAX_PASSWORD_LENGTH = 1024;
/** From this length a password may use a single kind of character (a passphrase). */
const PASSPHRASE_LENGTH = 20;

export async function hashPassword(password: string): Promise<string> {
  return Bun.password.hash(password, ARGON2);
}

/** Whether the password matches the hash; false (never an exception) for a malformed hash. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  try {
    return await Bun.password.verify(password, hash);
  } catch {
    return false;
  }
}

let dummyHash: Promise<string> | undefined;

/**
 * Verifies against a throwaway hash so that a login for an unknown account
 * (or one without a password) takes as long as a wrong password.
 */
export async function verifyAgainstDummy(password: string): Promise<false> {
  dummyHash ??= hashPassword(crypto.randomUUID());
  await verifyPassword(password, await dummyHash);
  return false;
}

/** Why the password is not acceptable for this account, or undefined when it is. */
export function passwordProblem(password: string, email: string): string | undefined {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH) return `the password must be at least ${MIN_PASSWORD_LENGTH} characters long`;
  if (length > MAX_PASSWORD_LENGTH) return `the password must be at most ${MAX_PASSWORD_LENGTH} characters long`;
  const lowered = password.trim().toLowerCase();
  const address = email.trim().toLowerCase();
  if (lowered === address || lowered === address.split("@")[0]) return "the password must not be the email address";
  if (new Set(password).size < 5) return "the password repeats too few characters: use at least 5 different ones";
  const kinds = [/\p{Ll}/u, /\p{Lu}/u, /\p{N}/u, /[^\p{Ll}\p{Lu}\p{N}]/u].filter((kind) => kind.test(password)).length;
  if (kinds < 2 && length < PASSPHRASE_LENGTH) {
    return `the password must mix kinds of characters (lowercase, uppercase, digits, symbols) or be at least ${PASSPHRASE_LENGTH} characters long`;
  }
  return undefined;
}
