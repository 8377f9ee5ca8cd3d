#!/usr/bin/env bun
/** Entry point of the gigmcp executable. */
import { main } from "./cli/index.ts";

process.exitCode = await main(process.argv.slice(2));
