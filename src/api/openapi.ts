/** The OpenAPI 3.1 document, generated from the same route table and schemas that serve the API. */
import { toJsonSchema } from "@valibot/to-json-schema";
import type { Route } from "./route.ts";

const ERROR = {
  type: "object",
  required: ["error"],
  properties: { error: { type: "object", required: ["code", "message"], properties: { code: { type: "string" }, message: { type: "string" }, details: {} } } },
};

function schemaOf(schema: NonNullable<Route["body"]>): Record<string, unknown> {
  // Transforms (query strings parsed to numbers) have no JSON Schema form; the input side is what is documented.
  const { $schema: _ignored, ...json } = toJsonSchema(schema, { errorMode: "ignore" }) as Record<string, unknown>;
  return json;
}

export function openApiDocument(routes: Route[], options: { version: string; prefix: string }) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, "{$1}");
    const pathParams = [...route.path.matchAll(/:(\w+)/g)].map(([, name]) => ({ name, in: "path", required: true, schema: { type: "string" } }));
    const query = route.query ? (schemaOf(route.query).properties as Record<string, unknown> | undefined) ?? {} : {};
    const queryParams = Object.entries(query).map(([name, schema]) => ({ name, in: "query", required: false, schema }));
    const status = String(route.status ?? 200);
    paths[path] ??= {};
    paths[path]![route.method.toLowerCase()] = {
      summary: route.summary,
      security: route.access === "public" ? [] : [{ session: [] }, { apiToken: [] }],
      parameters: [...pathParams, ...queryParams],
      ...(route.body && { requestBody: { required: true, content: { "application/json": { schema: schemaOf(route.body) } } } }),
      responses: {
        [status]: status === "204" ? { description: "done" } : status === "302" ? { description: "a redirect (Location)" } : { description: "ok", content: { [route.produces ?? "application/json"]: { schema: route.produces ? { type: "string" } : {} } } },
        default: { description: "an error", content: { "application/json": { schema: ERROR } } },
      },
      ...(route.access === "admin" && { "x-gigmcp-access": "admin" }),
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "Gig'MCP control plane", version: options.version },
    servers: [{ url: options.prefix }],
    components: {
      securitySchemes: {
        session: { type: "apiKey", in: "cookie", name: "gig_session", description: "Browser session; changes also need the X-CSRF-Token header." },
        apiToken: { type: "http", scheme: "bearer", description: "API token (gigapi_…) with read, write or admin scope." },
      },
    },
    paths,
  };
}
