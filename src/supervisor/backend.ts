/**
 * One running backend: an MCP client session with one server process for one
 * tenant. It caches the backend's lists (tools, prompts, resources, templates)
 * until the backend says they changed.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { RequestOptions } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  ListPromptsResultSchema,
  ListResourcesResultSchema,
  ListResourceTemplatesResultSchema,
  ListToolsResultSchema,
  type Prompt,
  type Resource,
  type ResourceTemplate,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import type { RequestScope } from "../log/index.ts";
import type { RunningProcess } from "../sandbox/index.ts";
import type { Server } from "../store/index.ts";

export type ListKind = "tools" | "prompts" | "resources" | "resourceTemplates";

export interface ListItems {
  tools: Tool;
  prompts: Prompt;
  resources: Resource;
  resourceTemplates: ResourceTemplate;
}

const LISTS = {
  tools: { method: "tools/list", schema: ListToolsResultSchema, field: "tools", changed: "notifications/tools/list_changed" },
  prompts: { method: "prompts/list", schema: ListPromptsResultSchema, field: "prompts", changed: "notifications/prompts/list_changed" },
  resources: { method: "resources/list", schema: ListResourcesResultSchema, field: "resources", changed: "notifications/resources/list_changed" },
  resourceTemplates: {
    method: "resources/templates/list",
    schema: ListResourceTemplatesResultSchema,
    field: "resourceTemplates",
    changed: "notifications/resources/list_changed",
  },
} as const;

/** A backend listing more pages than this is treated as broken. */
const MAX_LIST_PAGES = 100;

export class Backend {
  readonly startedAt = Date.now();
  lastUsedAt = Date.now();
  private holds = 0;
  private readonly lists = new Map<ListKind, Promise<unknown[]>>();
  /** The HTTP requests whose calls are in flight here, oldest first (one per call). */
  private readonly callRequests: RequestScope[] = [];

  constructor(
    readonly key: string,
    readonly server: Server,
    readonly tenantId: string,
    readonly client: Client,
    private readonly process: Pick<RunningProcess, "pid" | "memoryBytes">,
    private readonly defaultTimeoutMs: number,
  ) {}

  get pid(): number {
    return this.process.pid;
  }

  /** Memory its sandbox uses now (see RunningProcess.memoryBytes). */
  memoryBytes(): number | null {
    return this.process.memoryBytes();
  }

  /** True while a request is in flight or a subscription keeps the backend needed. */
  get busy(): boolean {
    return this.holds > 0;
  }

  /** Marks the backend as needed until the returned release function is called. */
  retain(): () => void {
    this.holds++;
    this.lastUsedAt = Date.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.lastUsedAt = Date.now();
    };
  }

  /** The HTTP requests whose calls the backend is serving now: what it does meanwhile (egress) is on their behalf. */
  get requests(): readonly RequestScope[] {
    return [...this.callRequests];
  }

  /**
   * Sends one request with the server's timeout, keeping the backend alive
   * meanwhile; `request` is the HTTP request it serves.
   */
  async request<T extends Parameters<Client["request"]>[1]>(
    request: { method: string; params?: Record<string, unknown> },
    schema: T,
    { request: served, ...options }: RequestOptions & { request?: RequestScope } = {},
  ) {
    const release = this.retain();
    if (served) this.callRequests.push(served);
    try {
      return await this.client.request(request, schema, {
        timeout: this.server.timeoutMs ?? this.defaultTimeoutMs,
        resetTimeoutOnProgress: true,
        ...options,
      });
    } finally {
      if (served) this.callRequests.splice(this.callRequests.indexOf(served), 1);
      release();
    }
  }

  /** Everything the backend lists of one kind, across all pages; cached until it changes. */
  async list<K extends ListKind>(kind: K): Promise<ListItems[K][]> {
    if (!this.supports(kind)) return [];
    let cached = this.lists.get(kind);
    if (!cached) {
      cached = this.fetchAll(kind);
      this.lists.set(kind, cached);
      cached.catch(() => this.lists.delete(kind));
    }
    return (await cached) as ListItems[K][];
  }

  /** Drops cached lists named by a list_changed notification; returns whether it was one. */
  invalidate(method: string): boolean {
    let matched = false;
    for (const [kind, spec] of Object.entries(LISTS) as [ListKind, (typeof LISTS)[ListKind]][]) {
      if (spec.changed === method) {
        this.lists.delete(kind);
        matched = true;
      }
    }
    return matched;
  }

  supports(kind: ListKind): boolean {
    const capabilities = this.client.getServerCapabilities() ?? {};
    return kind === "resourceTemplates" ? capabilities.resources !== undefined : capabilities[kind] !== undefined;
  }

  private async fetchAll(kind: ListKind): Promise<unknown[]> {
    const spec = LISTS[kind];
    const items: unknown[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const result = (await this.request(
        { method: spec.method, params: cursor === undefined ? {} : { cursor } },
        spec.schema,
      )) as Record<string, unknown> & { nextCursor?: string };
      items.push(...(result[spec.field] as unknown[]));
      cursor = result.nextCursor;
      if (cursor === undefined) return items;
    }
    throw new Error(`${this.server.name} returned more than ${MAX_LIST_PAGES} pages of ${kind}`);
  }
}
