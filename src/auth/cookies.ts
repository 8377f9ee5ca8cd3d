/** The cookies of a browser session, read the same way by the API and the gateway's rate limiter. */

export const SESSION_COOKIE = "gig_session";
export const CSRF_COOKIE = "gig_csrf";
/** Carries the sealed state, nonce and PKCE verifier of a login in flight at the OIDC provider. */
export const OIDC_COOKIE = "gig_oidc";

export function cookieValue(request: Request, name: string): string | undefined {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return value.join("=");
  }
  return undefined;
}
