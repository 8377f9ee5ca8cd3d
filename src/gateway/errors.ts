/**
 * JSON-RPC errors as clients read them. The SDK's McpError prefixes its
 * message with "MCP error <code>:", and that text is what goes on the wire,
 * so the gateway answers with this plain error (the SDK sends `code`,
 * `message` and `data` of whatever a handler throws).
 */
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";

export class RpcError extends Error {
  override name = "RpcError";
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

const MCP_ERROR_PREFIX = /^MCP error -?\d+: /;

/** MCP's code for a resource URI nobody serves. */
export const RESOURCE_NOT_FOUND = -32002;

/** The error a client answered a relayed request with, passed back to the backend as the client said it. */
export function explainClientError(error: unknown): RpcError {
  if (error instanceof McpError) return new RpcError(error.code, error.message.replace(MCP_ERROR_PREFIX, ""), error.data);
  return new RpcError(ErrorCode.InternalError, error instanceof Error ? error.message : String(error));
}

/** A backend's or the SDK's error, restated for the client with the server's name where it helps. */
export function explainBackendError(error: unknown, server: string): RpcError {
  if (error instanceof RpcError) return error;
  if (error instanceof McpError) {
    if (error.code === ErrorCode.ConnectionClosed) {
      return new RpcError(ErrorCode.InternalError, `Server ${server} stopped while handling the request; it restarts on next use`);
    }
    return explainClientError(error);
  }
  return new RpcError(ErrorCode.InternalError, `Server ${server} failed: ${error instanceof Error ? error.message : String(error)}`);
}

/** An HTTP answer carrying a JSON-RPC error that belongs to no request (id null): refusals before any message is read. */
export function jsonRpcError(status: number, code: number, message: string, headers?: Record<string, string>): Response {
  return Response.json({ jsonrpc: "2.0", error: { code, message }, id: null }, { status, headers });
}

/** The spec's answer to a session id the server does not know (any more): the client initializes a new one. */
export function sessionNotFound(): Response {
  return jsonRpcError(404, -32001, "Session not found: initialize a new session");
}
