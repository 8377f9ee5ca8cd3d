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
export interface AuditEvent {
  id: number;
  time: number;
  action: string;
  decision: string;
  actor: string | null;
  tenantId: string | null;
  detail: Record<string, unknown>;
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

export async function api<T>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown): Promise<T> {
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
