/**
 * The MCP stdio transport over a process started by a Runner. Framing is the
 * SDK's own (ReadBuffer / serializeMessage); this only moves bytes and owns
 * the process's shutdown.
 */
import { ReadBuffer, serializeMessage } from "@modelcontextprotocol/sdk/shared/stdio.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { RunningProcess } from "../sandbox/index.ts";

/** Largest single JSON-RPC message accepted from a backend. */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Grace periods between closing stdin, SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 1500;

export class ProcessTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private readonly buffer = new ReadBuffer({ maxBufferSize: MAX_MESSAGE_BYTES });
  private closed = false;
  private flushing: Promise<unknown> | undefined;

  constructor(private readonly process: RunningProcess) {}

  async start(): Promise<void> {
    const drained = this.pump();
    // Deliver what the process wrote before exiting, but do not wait forever
    // on a stdout still held open by one of its children.
    void this.process.exited.then(() => settlesWithin(drained, STOP_GRACE_MS)).then(() => this.finish());
  }

  private async pump(): Promise<void> {
    try {
      for await (const chunk of this.process.stdout) {
        this.buffer.append(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        for (;;) {
          let message: JSONRPCMessage | null;
          try {
            message = this.buffer.readMessage();
          } catch (error) {
            // A malformed line is the backend's fault; report it and keep reading.
            this.onerror?.(error instanceof Error ? error : new Error(String(error)));
            continue;
          }
          if (message === null) break;
          this.onmessage?.(message);
          // The SDK runs notification handlers one microtask later but settles
          // responses at once; yielding keeps a progress notification written
          // before a response from arriving after it.
          await Promise.resolve();
        }
      }
    } catch (error) {
      this.onerror?.(error instanceof Error ? error : new Error(String(error)));
      this.process.kill("SIGKILL");
    }
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) throw new Error("backend process has exited");
    this.process.stdin.write(serializeMessage(message));
    // Messages written in the same tick share one flush: one pipe write for concurrent calls.
    this.flushing ??= Promise.resolve().then(() => {
      this.flushing = undefined;
      return this.process.stdin.flush();
    });
    await this.flushing;
  }

  async close(): Promise<void> {
    if (!this.closed) {
      try {
        this.process.stdin.end();
      } catch {
        // stdin already gone: the process is exiting anyway.
      }
      for (const signal of ["SIGTERM", "SIGKILL"] as const) {
        if (await settlesWithin(this.process.exited, STOP_GRACE_MS)) break;
        this.process.kill(signal);
      }
      await this.process.exited;
    }
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffer.clear();
    this.onclose?.();
  }
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: Timer | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
