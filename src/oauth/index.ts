/**
 * OAuth 2 as a client: the protocol pieces shared with operator login (PKCE,
 * state, token requests), refresh of per-server credentials, vendor presets,
 * and per-tenant connections to vendors that feed the egress proxy's injection.
 */
export { authenticateClient, codeChallenge, constantTimeEqual, formEncode, randomToken, TokenEndpointError, tokenRequest, type OAuthClient, type TokenResponse } from "./protocol.ts";
export { refreshCredential } from "./tokens.ts";
export { VENDOR_PRESETS, type VendorPreset } from "./presets.ts";
export {
  createConnections,
  FLOW_MAX_AGE_MS,
  OAuthError,
  REFRESH_MARGIN_MS,
  type ConnectionsOptions,
  type ConnectionView,
  type OAuthAppInput,
  type OAuthAppView,
  type OAuthConnections,
  type OAuthErrorCode,
  type RevokeResult,
} from "./connections.ts";
