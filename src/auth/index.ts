/**
 * Authentication of people and scripts calling the management API:
 * passwords, login throttling, browser sessions with CSRF tokens, API tokens.
 */
export { hashPassword, verifyPassword, passwordProblem, MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH } from "./passwords.ts";
export { LoginThrottle, DEFAULT_THROTTLE_LIMITS, type ThrottleLimits } from "./throttle.ts";
export {
  AuthError,
  createAuth,
  DEFAULT_SESSION_POLICY,
  type ActiveSession,
  type ApiTokenRequest,
  type Auth,
  type AuthErrorCode,
  type AuthOptions,
  type NewApiToken,
  type NewSession,
  type SessionPolicy,
} from "./auth.ts";
export type { ApiScope, ApiToken } from "../store/index.ts";
export { createOidcClient, OidcError, PENDING_LOGIN_MAX_AGE_MS, type OidcClient, type OidcIdentity, type OidcSettings, type PendingLogin } from "./oidc.ts";
export { cookieValue, CSRF_COOKIE, OIDC_COOKIE, SESSION_COOKIE } from "./cookies.ts";
