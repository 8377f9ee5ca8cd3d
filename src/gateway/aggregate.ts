/**
 * One profile's view of its backends: merged lists of tools, prompts and
 * resources, and the reverse mapping from an exposed name or URI to the
 * backend that owns it.
 */
import { ErrorCode, type Prompt, type Resource, type ResourceTemplate, type Tool } from "@modelcontextprotocol/sdk/types.js";
import { UriTemplate } from "@modelcontextprotocol/sdk/shared/uriTemplate.js";
import type { Profile, ProfileMember } from "../store/index.ts";
import type { Backend, ListItems, ListKind, Supervisor } from "../supervisor/index.ts";
import { RESOURCE_NOT_FOUND, RpcError } from "./errors.ts";

/** A profile as one client session sees it. */
export interface ProfileContext {
  profile: Profile;
  members: ProfileMember[];
}

/** Where an exposed name leads: the owning member and its own name for the item. */
export interface Target {
  member: ProfileMember;
  name: string;
}

type NamedKind = "tools" | "prompts";
type NamedItem = Tool | Prompt;

export interface Listing<T> {
  items: T[];
  /** Members that could not be listed, with the reason; their items are missing. */
  failures: { server: string; error: string }[];
}

interface Entry<T> {
  exposed: string;
  target: Target;
  item: T;
}

/** JSON-RPC error for a name or URI that is not in the profile (the MCP spec's choice of code). */
function unknown(kind: string, name: string): RpcError {
  return new RpcError(ErrorCode.InvalidParams, `Unknown ${kind}: ${name}`);
}

export class Aggregator {
  constructor(private readonly supervisor: Supervisor) {}

  backend(context: ProfileContext, member: ProfileMember): Promise<Backend> {
    return this.supervisor.acquire(member.server, context.profile.tenantId);
  }

  /** The profile's backends that are running now. */
  running(context: ProfileContext): Backend[] {
    return context.members.flatMap((member) => this.supervisor.find(member.server.id, context.profile.tenantId) ?? []);
  }

  async tools(context: ProfileContext): Promise<Listing<Tool>> {
    return this.named(context, "tools", context.members).then(({ entries, failures }) => ({
      items: entries.map(({ exposed, item }) => ({ ...item, name: exposed }) as Tool),
      failures,
    }));
  }

  async prompts(context: ProfileContext): Promise<Listing<Prompt>> {
    return this.named(context, "prompts", context.members).then(({ entries, failures }) => ({
      items: entries.map(({ exposed, item }) => ({ ...item, name: exposed }) as Prompt),
      failures,
    }));
  }

  resolveTool(context: ProfileContext, exposed: string): Promise<Target> {
    return this.resolveNamed(context, "tools", exposed);
  }

  resolvePrompt(context: ProfileContext, exposed: string): Promise<Target> {
    return this.resolveNamed(context, "prompts", exposed);
  }

  async resources(context: ProfileContext): Promise<Listing<Resource>> {
    const { results, failures } = await this.collect(context, context.members, "resources");
    return { items: results.flatMap(({ items }) => items), failures };
  }

  async resourceTemplates(context: ProfileContext): Promise<Listing<ResourceTemplate>> {
    const { results, failures } = await this.collect(context, context.members, "resourceTemplates");
    return { items: results.flatMap(({ items }) => items), failures };
  }

  /**
   * The member owning a resource URI: the one listing it, else the one whose
   * template matches. URIs are passed through unchanged, so two members
   * claiming the same URI cannot be told apart and the read is refused.
   */
  async resolveResource(context: ProfileContext, uri: string): Promise<ProfileMember> {
    const listed = await this.collect(context, context.members, "resources");
    const owners = listed.results.filter(({ items }) => items.some((resource) => resource.uri === uri));
    if (owners.length === 0) {
      const templates = await this.collect(context, context.members, "resourceTemplates");
      owners.push(
        ...templates.results
          .filter(({ items }) => items.some((template) => new UriTemplate(template.uriTemplate).match(uri) !== null))
          .map(({ member }) => ({ member, items: [] })),
      );
    }
    if (owners.length > 1) {
      throw new RpcError(
        ErrorCode.InvalidParams,
        `Resource ${uri} is offered by several servers (${owners.map(({ member }) => member.server.name).join(", ")}); remove one from the profile`,
      );
    }
    const owner = owners[0];
    if (!owner) throw new RpcError(RESOURCE_NOT_FOUND, `Resource not found: ${uri}`);
    return owner.member;
  }

  /** The member owning a resource template (for completion). */
  async resolveTemplate(context: ProfileContext, uriTemplate: string): Promise<ProfileMember> {
    const { results } = await this.collect(context, context.members, "resourceTemplates");
    const owner = results.find(({ items }) => items.some((template) => template.uriTemplate === uriTemplate));
    if (!owner) throw unknown("resource template", uriTemplate);
    return owner.member;
  }

  private async resolveNamed(context: ProfileContext, kind: NamedKind, exposed: string): Promise<Target> {
    const label = kind === "tools" ? "tool" : "prompt";
    // With prefixes the server is named by the part before the first "_"
    // (server names cannot contain one), so only that backend is consulted.
    const candidates = context.profile.prefixTools
      ? context.members.filter((member) => exposed.startsWith(`${member.server.name}_`))
      : context.members;
    if (candidates.length === 0) throw unknown(label, exposed);
    const { entries, failures } = await this.named(context, kind, candidates);
    const entry = entries.find((candidate) => candidate.exposed === exposed);
    if (entry) return entry.target;
    const failure = failures[0];
    if (failure && candidates.length === 1) {
      throw new RpcError(ErrorCode.InternalError, `Server ${failure.server} is unavailable: ${failure.error}`);
    }
    throw unknown(label, exposed);
  }

  /** Merged named items of `members`, renamed for the profile; refuses collisions when names are not prefixed. */
  private async named(context: ProfileContext, kind: NamedKind, members: ProfileMember[]) {
    const { results, failures } = await this.collect(context, members, kind);
    const entries: Entry<NamedItem>[] = [];
    const owners = new Map<string, string>();
    for (const { member, items } of results) {
      for (const item of items as NamedItem[]) {
        if (kind === "tools" && member.tools !== null && !member.tools.includes(item.name)) continue;
        const exposed = context.profile.prefixTools ? `${member.server.name}_${item.name}` : item.name;
        const previous = owners.get(exposed);
        if (previous !== undefined) {
          throw new RpcError(
            ErrorCode.InternalError,
            `Profile ${context.profile.name} exposes ${kind === "tools" ? "tool" : "prompt"} ${exposed} from both ${previous} and ${member.server.name}; ` +
              "restrict one with `gigmcp profile add-server PROFILE SERVER --tools …`, remove one, or turn name prefixes on",
          );
        }
        owners.set(exposed, member.server.name);
        entries.push({ exposed, target: { member, name: item.name }, item });
      }
    }
    return { entries, failures };
  }

  /** Lists one kind from every member concurrently; a member that fails is reported, not fatal. */
  private async collect<K extends ListKind>(context: ProfileContext, members: ProfileMember[], kind: K) {
    const settled = await Promise.allSettled(
      members.map(async (member) => ({ member, items: await (await this.backend(context, member)).list(kind) })),
    );
    const results: { member: ProfileMember; items: ListItems[K][] }[] = [];
    const failures: Listing<unknown>["failures"] = [];
    settled.forEach((outcome, index) => {
      if (outcome.status === "fulfilled") results.push(outcome.value);
      else failures.push({ server: members[index]!.server.name, error: errorMessage(outcome.reason) });
    });
    return { results, failures };
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
