/**
 * Serves the dashboard's static export (web/out) from the gateway's own
 * origin, so the browser talks to /api/v1 without CORS. Only files below the
 * export's folder are ever served.
 */
import { existsSync, statSync } from "node:fs";
import { join, normalize, resolve, sep } from "node:path";

export function dashboardFiles(root: string) {
  const base = resolve(root);
  if (!existsSync(join(base, "index.html"))) {
    throw new Error(`GIG_DASHBOARD_DIR=${root} holds no index.html: build the dashboard (cd web && npm ci && npm run build) and point at web/out`);
  }
  const file = (path: string) => {
    const candidate = normalize(join(base, path));
    if (candidate !== base && !candidate.startsWith(base + sep)) return undefined;
    return existsSync(candidate) && statSync(candidate).isFile() ? candidate : undefined;
  };
  /** The file for a URL path: the file itself, PATH.html, PATH/index.html, else the 404 page. */
  return (pathname: string): Response => {
    const path = decodeURIComponent(pathname).replace(/\/+$/, "") || "/index";
    const found = file(path) ?? file(`${path}.html`) ?? file(join(path, "index.html"));
    if (found) return new Response(Bun.file(found), { headers: { "x-content-type-options": "nosniff", "referrer-policy": "same-origin" } });
    const notFound = file("404.html");
    return new Response(notFound ? Bun.file(notFound) : "Not Found", { status: 404, headers: { "content-type": "text/html; charset=utf-8" } });
  };
}

/** A browser asking for a page (not an MCP client, which POSTs or asks for an event stream). */
export function wantsPage(request: Request): boolean {
  return request.method === "GET" && (request.headers.get("accept") ?? "").includes("text/html");
}
