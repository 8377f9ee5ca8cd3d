/**
 * The dashboard's only way to the gateway: relative /api/v1 requests from the same origin, with
 * the session cookie (HttpOnly, set by the gateway) and, on every state-changing request, the
 * session's CSRF token, which lives in sessionStorage.
 */

const CSRF_KEY = "gig_csrf";

export interface User {
  id: string;
  email: string;
  role: "admin" | "member";
}
export interface Profile {
  name: string;
  prefixTools: boolean;
  createdAt: number;
}
export interface ProfileServer {
  server: string;
  tools: string[] | null;
}
export interface ProfileToken {
  prefix: string;
  label: string;
  createdAt: number;
  lastUsedAt: number | null;
}
export interface Server {
  name: string;
  kind: string;
  tier: string;
  egress: unknown;
  credentials: { id: string; type: CredentialType }[];
  installed: { reference: string; digest: string } | null;
}
export type CredentialType = "api_key" | "basic" | "oauth2";
export interface Credential {
  server: string;
  id: string;
  type: CredentialType;
  createdAt: number;
  updatedAt: number;
}
export type Tier = "sealed" | "entrusted";
export interface CatalogEntry {
  name: string;
  version: string;
  displayName: string | null;
  description: string | null;
  category: string | null;
  tier: Tier;
  /** In words: "*.x" reads "any host under x". */
  egress: string[];
  credentials: { id: string; type: CredentialType; vendor: string | null }[];
  tools: number;
  installable: boolean;
  problem: string | null;
  installed: { version: string | null; digest: string } | null;
}
export interface Catalog {
  servers: CatalogEntry[];
  categories: string[];
}
export interface RunningSandbox {
  server: string;
  tenantId: string;
  pid: number;
  startedAt: number;
  uptimeSeconds: number;
  memoryBytes: number | null;
}
export interface AuditSummary {
  bucketMs: number;
  buckets: { start: number; calls: number; denies: number }[];
}
export interface AuditEvent {
  id: number;
  time: number;
  action: string;
  decision: string;
  actor: string | null;
  tenantId: string | null;
  detail: Record<string, unknown>;
}

export interface Connection {
  vendor: string;
  status: "connected" | "needs_reconnect" | "not_connected";
  scopes: string[];
  expiresAt: number | null;
  /** Why a connection needs reconnecting (the vendor's refusal). */
  problem: string | null;
  servers: string[];
  appConfigured: boolean;
  connectedAt: number | null;
  updatedAt: number | null;
}
export interface OAuthApp {
  vendor: string;
  clientId: string;
  authorizeUrl: string | null;
  tokenUrl: string | null;
  scopes: string[];
  pkce: boolean;
  hasClientSecret: boolean;
  /** environment: GIG_OAUTH_<VENDOR>_* variables, which the dashboard cannot change. */
  source: "environment" | "stored";
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export function csrfToken(): string | null {
  try {
    // After an OIDC login nothing was returned to this page: the gateway left the token in a readable cookie.
    return sessionStorage.getItem(CSRF_KEY) ?? /(?:^|;\s*)gig_csrf=([^;]+)/.exec(document.cookie)?.[1] ?? null;
  } catch {
    return null;
  }
}

function setCsrfToken(token: string | null): void {
  try {
    if (token) sessionStorage.setItem(CSRF_KEY, token);
    else sessionStorage.removeItem(CSRF_KEY);
  } catch {
    // storage unavailable: state-changing requests will be refused by the gateway
  }
}

export async function api<T>(method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET") {
    const token = csrfToken();
    if (token) headers["x-csrf-token"] = token;
  }
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "the gateway could not be reached");
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  if (!response.ok) {
    const error = (parsed as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
    throw new ApiError(response.status, error?.code ?? "http_error", error?.message ?? `request failed (${response.status})`, error?.details);
  }
  return parsed as T;
}

export async function login(email: string, password: string): Promise<User> {
  const result = await api<{ user: User; csrfToken: string }>("POST", "/sessions", { email, password });
  setCsrfToken(result.csrfToken);
  return result.user;
}

export async function logout(): Promise<void> {
  try {
    await api<void>("DELETE", "/sessions/current");
  } finally {
    setCsrfToken(null);
  }
}

export const enc = encodeURIComponent;

export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return error instanceof Error ? error.message : String(error);
}

export function formatTime(ms: number): string {
  return new Date(ms).toLocaleString();
}

/** "3d 4h", "2h 5m", "42s": the two largest units are enough to tell sandboxes apart. */
export function formatDuration(seconds: number): string {
  const units: [string, number][] = [["d", 86_400], ["h", 3_600], ["m", 60], ["s", 1]];
  const parts: string[] = [];
  let rest = Math.max(0, Math.floor(seconds));
  for (const [unit, size] of units) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count > 0 || (unit === "s" && parts.length === 0)) parts.push(`${count}${unit}`);
  }
  return parts.slice(0, 2).join(" ");
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 && unit > 0 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** A query string of the non-empty values, "" when there are none. */
export function queryString(values: Record<string, string | number | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) if (value !== undefined && value !== "") params.set(key, String(value));
  const text = params.toString();
  return text ? `?${text}` : "";
}
