/** The bundled `echo` server: a dependable backend for trying the gateway out and for tests. */
import * as v from "valibot";
import { createToolServer, defineTool, textResult } from "./tool-server.ts";

const MAX_SLOW_SECONDS = 600;

export function createEchoServer(version: string) {
  return createToolServer({ name: "echo", version }, [
    defineTool({
      name: "echo",
      description: "Returns the message unchanged.",
      input: v.object({ message: v.pipe(v.string(), v.description("Text to send back")) }),
      annotations: { readOnlyHint: true, openWorldHint: false },
      run: async ({ message }) => textResult(message),
    }),
    defineTool({
      name: "add",
      description: "Adds two numbers.",
      input: v.object({
        a: v.pipe(v.number(), v.description("First addend")),
        b: v.pipe(v.number(), v.description("Second addend")),
      }),
      annotations: { readOnlyHint: true, openWorldHint: false },
      run: async ({ a, b }) => textResult(String(a + b), { sum: a + b }),
    }),
    defineTool({
      name: "slow",
      description: "Waits, reporting progress once per step; stops early when cancelled.",
      input: v.object({
        seconds: v.pipe(v.optional(v.number(), 5), v.minValue(0), v.maxValue(MAX_SLOW_SECONDS), v.description("Total duration")),
        steps: v.pipe(v.optional(v.number(), 5), v.integer(), v.minValue(1), v.maxValue(1000), v.description("Progress notifications to send")),
      }),
      annotations: { readOnlyHint: true, openWorldHint: false },
      run: async ({ seconds, steps }, context) => {
        const progressToken = context._meta?.progressToken;
        for (let step = 1; step <= steps; step++) {
          await abortableSleep((seconds * 1000) / steps, context.signal);
          if (progressToken !== undefined) {
            await context.sendNotification({
              method: "notifications/progress",
              params: { progressToken, progress: step, total: steps, message: `step ${step} of ${steps}` },
            });
          }
        }
        return textResult(`waited ${seconds}s in ${steps} steps`);
      },
    }),
  ]);
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
