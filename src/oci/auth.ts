/**
 * Registry authentication as the distribution spec describes it: try
 * anonymously, and on 401 answer the WWW-Authenticate challenge — a Bearer
 * token fetched from the realm (with the caller's credentials, if any), or
 * Basic with the caller's credentials. Tokens are cached per scope until they
 * expire.
 */
import * as v from "valibot";
import { OciError } from "./errors.ts";
import { readBody, send, throwIfTransient, type Transport } from "./http.ts";

export interface RegistryCredentials {
  username: string;
  password: string;
}

interface Challenge {
  /** Lowercase, e.g. "bearer" or "basic". */
  scheme: string;
  /** Parameter names lowercase, values unquoted. */
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const QUOTED = /"((?:[^"\\]|\\.)*)"/y;
const SPACE = /[\s,]*/y;

function match(pattern: RegExp, text: string, at: number): RegExpExecArray | null {
  pattern.lastIndex = at;
  return pattern.exec(text);
}

/** Parses a WWW-Authenticate value, which may hold several challenges. */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let at = 0;
  while (at < header.length) {
    at += match(SPACE, header, at)![0].length;
    const name = match(TOKEN, header, at);
    if (!name) break;
    at += name[0].length;
    const afterName = at + /^\s*/.exec(header.slice(at))![0].length;
    if (header[afterName] !== "=") {
      challenges.push({ scheme: name[0].toLowerCase(), params: {} });
      continue;
    }
    at = afterName + 1 + /^\s*/.exec(header.slice(afterName + 1))![0].length;
    const quoted = match(QUOTED, header, at);
    const value = quoted ? quoted[1]!.replace(/\\(.)/g, "$1") : (match(TOKEN, header, at)?.[0] ?? "");
    at += quoted ? quoted[0].length : value.length;
    const current = challenges.at(-1);
    if (current) current.params[name[0].toLowerCase()] = value;
  }
  return challenges;
}

const tokenResponse = v.object({
  token: v.optional(v.string()),
  access_token: v.optional(v.string()),
  expires_in: v.optional(v.pipe(v.number(), v.minValue(0))),
});

/** The spec's default lifetime when the token server gives none. */
const DEFAULT_TOKEN_SECONDS = 60;
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;

interface CachedToken {
  value: string;
  expiresAt: number;
}

/** Authorization state for one repository of one registry. */
export class RegistryAuth {
  readonly #registry: string;
  readonly #credentials: RegistryCredentials | undefined;
  readonly #transport: Transport;
  readonly #tokens = new Map<string, CachedToken>();
  #scope: string;
  #basic = false;

  constructor(registry: string, repository: string, credentials: RegistryCredentials | undefined, transport: Transport) {
    this.#registry = registry;
    this.#credentials = credentials;
    this.#transport = transport;
    this.#scope = `repository:${repository}:pull`;
  }

  /** The Authorization header for the next registry request, if one is known to be needed. */
  header(): string | undefined {
    if (this.#basic && this.#credentials) return basicHeader(this.#credentials);
    const token = this.#tokens.get(this.#scope);
    if (token && token.expiresAt > Date.now()) return `Bearer ${token.value}`;
    return undefined;
  }

  /** Answers a 401's challenge so that the request can be sent again. */
  async answer(wwwAuthenticate: string | null): Promise<void> {
    const challenges = parseChallenges(wwwAuthenticate ?? "");
    const bearer = challenges.find((challenge) => challenge.scheme === "bearer");
    if (bearer) return this.#fetchToken(bearer.params);
    if (challenges.some((challenge) => challenge.scheme === "basic")) {
      if (!this.#credentials) throw new OciError(`registry ${this.#registry} requires a username and password; pass credentials for it`);
      if (this.#basic) throw new OciError(`registry ${this.#registry} refused the username and password; check the credentials`);
      this.#basic = true;
      return;
    }
    throw new OciError(`registry ${this.#registry} answered 401 without a Bearer or Basic challenge (${wwwAuthenticate ?? "no WWW-Authenticate"}); it cannot be used`);
  }

  async #fetchToken(params: Record<string, string>): Promise<void> {
    if (!params.realm) throw new OciError(`registry ${this.#registry} sent a Bearer challenge without a realm`);
    let realm: URL;
    try {
      realm = new URL(params.realm);
    } catch {
      throw new OciError(`registry ${this.#registry} sent a Bearer realm that is not a URL: ${params.realm}`);
    }
    const scope = params.scope ?? this.#scope;
    if (params.service) realm.searchParams.set("service", params.service);
    for (const item of scope.split(" ").filter(Boolean)) realm.searchParams.append("scope", item);
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.#credentials) headers.authorization = basicHeader(this.#credentials);
    const exchange = await send(realm, headers, this.#transport);
    const what = `token server ${realm.host}`;
    throwIfTransient(exchange, what);
    const { status } = exchange.response;
    if (status === 401 || status === 403) {
      exchange.discard();
      throw new OciError(
        this.#credentials
          ? `${what} refused the credentials for ${this.#registry}; check the username and password`
          : `${what} refused anonymous access to ${this.#registry}; pass credentials`,
      );
    }
    if (status !== 200) {
      exchange.discard();
      throw new OciError(`${what} answered ${status} instead of a token`);
    }
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(await readBody(exchange, `${what}'s answer`, MAX_TOKEN_RESPONSE_BYTES)));
    } catch (error) {
      if (error instanceof OciError) throw error;
      throw new OciError(`${what} answered with something other than JSON`);
    }
    const parsed = v.safeParse(tokenResponse, body);
    const value = parsed.success ? (parsed.output.token ?? parsed.output.access_token) : undefined;
    if (!parsed.success || !value) throw new OciError(`${what} answered without a token`);
    // Renew a little early so that a token does not expire in flight.
    const lifetimeMs = (parsed.output.expires_in ?? DEFAULT_TOKEN_SECONDS) * 1000;
    this.#tokens.set(scope, { value, expiresAt: Date.now() + lifetimeMs * 0.9 });
    this.#scope = scope;
    this.#basic = false;
  }
}

function basicHeader(credentials: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`;
}
