/** Facts about this gigmcp executable. */
import packageJson from "../../package.json";

export const VERSION: string = packageJson.version;

/**
 * argv that runs this gigmcp again: the compiled executable itself, or bun
 * with the entry script when running from source.
 */
export function selfCommand(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
  return compiled ? [process.execPath] : [process.execPath, Bun.main];
}
