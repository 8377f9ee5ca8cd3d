/**
 * The bundled `fetch` server: fetches one http(s) URL and returns its text,
 * HTML turned into markdown. Bun's fetch honours HTTPS_PROXY / HTTP_PROXY /
 * NO_PROXY, which is how a sandboxed instance reaches the egress proxy.
 * FETCH_BEARER_TOKEN, if set, is sent as `Authorization: Bearer …`; in a
 * sealed sandbox it holds a placeholder the proxy swaps for the real token.
 */
import TurndownService from "turndown";
import * as v from "valibot";
import { createToolServer, defineTool, textResult, toolError } from "./tool-server.ts";

/** Bytes read from a response at most; the rest is never downloaded. */
const MAX_BODY_BYTES = 5 * 1024 * 1024;
const FETCH_TIMEOUT_MS = 30_000;

const httpUrl = v.pipe(
  v.string(),
  v.url("must be an absolute URL"),
  v.check((text) => /^https?:$/.test(new URL(text).protocol), "only http and https URLs can be fetched"),
);

export function createFetchServer(version: string, env: Record<string, string | undefined> = process.env) {
  const authorization: Record<string, string> = env.FETCH_BEARER_TOKEN ? { authorization: `Bearer ${env.FETCH_BEARER_TOKEN}` } : {};
  const turndown = new TurndownService({ headingStyle: "atx", codeBlockStyle: "fenced" });
  turndown.remove(["script", "style", "noscript", "template"]);

  return createToolServer({ name: "fetch", version }, [
    defineTool({
      name: "fetch",
      description:
        "Fetches a URL over HTTP(S) and returns its content as text; HTML is converted to markdown unless raw is set. " +
        "Long content is cut at max_length characters; call again with start_index to read on.",
      input: v.object({
        url: v.pipe(httpUrl, v.description("The http or https URL to fetch")),
        raw: v.pipe(v.optional(v.boolean(), false), v.description("Return HTML as-is instead of markdown")),
        max_length: v.pipe(v.optional(v.number(), 20_000), v.integer(), v.minValue(1), v.maxValue(1_000_000), v.description("Characters to return at most")),
        start_index: v.pipe(v.optional(v.number(), 0), v.integer(), v.minValue(0), v.description("Character offset to start from")),
      }),
      annotations: { readOnlyHint: true, openWorldHint: true },
      run: async ({ url, raw, max_length, start_index }, context) => {
        let response: Response;
        try {
          response = await fetch(url, {
            redirect: "follow",
            signal: AbortSignal.any([context.signal, AbortSignal.timeout(FETCH_TIMEOUT_MS)]),
            headers: { "user-agent": `gigmcp-fetch/${version}`, accept: "text/html, text/*;q=0.9, application/json;q=0.9, */*;q=0.1", ...authorization },
          });
        } catch (error) {
          return toolError(`could not fetch ${url}: ${error instanceof Error ? error.message : String(error)}`);
        }
        const type = response.headers.get("content-type") ?? "";
        const { text, complete } = await readText(response);
        if (!response.ok) return toolError(`${url} answered ${response.status} ${response.statusText}\n\n${text.slice(0, 2000)}`);
        if (!isTextual(type)) return toolError(`${url} returned ${type || "an unknown content type"}, which is not text`);
        const content = !raw && type.includes("html") ? turndown.turndown(text) : text;
        return textResult(page(content, start_index, max_length, complete));
      },
    }),
  ]);
}

function isTextual(contentType: string): boolean {
  return contentType === "" || /^(text\/|application\/(json|xml|xhtml\+xml|javascript|ld\+json|.*\+json|.*\+xml))/.test(contentType);
}

async function readText(response: Response): Promise<{ text: string; complete: boolean }> {
  const reader = response.body?.getReader();
  if (!reader) return { text: "", complete: true };
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { text: new TextDecoder().decode(Buffer.concat(chunks)), complete: true };
    chunks.push(value);
    size += value.byteLength;
    if (size >= MAX_BODY_BYTES) {
      await reader.cancel();
      return { text: new TextDecoder().decode(Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES)), complete: false };
    }
  }
}

function page(content: string, start: number, length: number, complete: boolean): string {
  if (start >= content.length) return `No more content: the document has ${content.length} characters.`;
  const end = start + length;
  const slice = content.slice(start, end);
  if (end < content.length) return `${slice}\n\n[truncated: ${content.length - end} more characters; call again with start_index=${end}]`;
  if (!complete) return `${slice}\n\n[truncated: the document is larger than ${MAX_BODY_BYTES} bytes and was cut]`;
  return slice;
}
