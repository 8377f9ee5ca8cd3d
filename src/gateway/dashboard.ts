/**
 * Serves the dashboard's static export (web/out) from the gateway's own
 * origin, so the browser talks to /api/v1 without CORS: either the copy that
 * `make build` embeds in the executable or a folder. Only files below the
 * export's root are ever served.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join, normalize, resolve, sep } from "node:path";
import type { DashboardSource } from "../config/index.ts";

/**
 * `bun build --compile --asset web/out` stores the export beside the entry point in the executable's
 * virtual filesystem, under the folder's own name.
 */
const EMBEDDED_ROOT = join(dirname(Bun.main), "out");

export function dashboardFiles(source: DashboardSource) {
  const base = source.kind === "embedded" ? EMBEDDED_ROOT : resolve(source.dir);
  if (!existsSync(join(base, "index.html"))) {
    throw new Error(
      source.kind === "embedded"
        ? "GIG_DASHBOARD=embedded, but this gigmcp has no dashboard built in: build it with `make build` (which embeds web/out), or point GIG_DASHBOARD_DIR at a dashboard export"
        : `GIG_DASHBOARD_DIR=${source.dir} holds no index.html: build the dashboard (cd web && npm ci && npm run build) and point at web/out`,
    );
  }
  const file = (path: string) => {
    const candidate = normalize(join(base, path));
    if (candidate !== base && !candidate.startsWith(base + sep)) return undefined;
    return existsSync(candidate) && statSync(candidate).isFile() ? candidate : undefined;
  };
  /**
   * The answer for a request the dashboard may own: the file itself, PATH.html or PATH/index.html;
   * a page request for anything else gets the 404 page; other requests fall through (undefined).
   */
  return (request: Request): Response | undefined => {
    if (request.method !== "GET" && request.method !== "HEAD") return undefined;
    const { pathname } = new URL(request.url);
    const page = (request.headers.get("accept") ?? "").includes("text/html");
    // The gateway's own paths; "/" belongs to MCP clients unless a browser asks for a page.
    if (OWN_PATHS.test(pathname) || (pathname === "/" && !page)) return undefined;
    let path: string;
    try {
      path = decodeURIComponent(pathname).replace(/\/+$/, "") || "/index";
    } catch {
      return undefined;
    }
    const found = file(path) ?? file(`${path}.html`) ?? file(join(path, "index.html"));
    if (found) return new Response(Bun.file(found), { headers: { "x-content-type-options": "nosniff", "referrer-policy": "same-origin" } });
    if (!page) return undefined;
    const notFound = file("404.html");
    return new Response(notFound ? Bun.file(notFound) : "Not Found", { status: 404, headers: { "content-type": "text/html; charset=utf-8" } });
  };
}

const OWN_PATHS = /^\/(api|mcp|healthz|readyz|metrics|\.well-known)(\/|$)/;
