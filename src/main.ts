#!/usr/bin/env bun
/** Entry point of the gigmcp executable. */

// Bundled servers start often (one per sandbox): their entry loads only what they need.
const entry = process.argv[2] === "mcp" ? import("./cli/mcp.ts") : import("./cli/index.ts");
entry.then(({ main }) => main(process.argv.slice(2))).then((code) => {
  process.exitCode = code;
});
export {};
