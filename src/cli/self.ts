/** Facts about this gigmcp executable. */
import packageJson from "../../package.json";
import { runningCompiled } from "../config/index.ts";

export const VERSION: string = packageJson.version;

/**
 * argv that runs this gigmcp again: the compiled executable itself, or bun
 * with the entry script when running from source.
 */
export function selfCommand(): string[] {
  return runningCompiled() ? [process.execPath] : [process.execPath, Bun.main];
}
