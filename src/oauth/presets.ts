/**
 * Where the vendors of the registry's oauth2 credentials run OAuth. An admin
 * still registers an app at the vendor (client id and secret); these only save
 * typing the endpoints, and every field can be overridden. Vendors whose
 * endpoints live on each customer's own host (Shopify, NetSuite, Zendesk,
 * Snowflake) have no preset: their app needs both URLs.
 */
export interface VendorPreset {
  authorizeUrl: string;
  tokenUrl: string;
  /** The vendor's RFC 7009 revocation endpoint, told on disconnect; unset where the vendor has none (or only a non-standard one). */
  revokeUrl?: string;
  /** Scopes the vendor needs besides the servers' own, e.g. to issue a refresh token. */
  scopes?: string[];
  /** False for vendors known to refuse a PKCE challenge. */
  pkce: boolean;
  /** Extra authorization parameters, e.g. Google's access_type=offline for a refresh token. */
  authorizeParams?: Record<string, string>;
}

const offlineConsent = { access_type: "offline", prompt: "consent" };

export const VENDOR_PRESETS: Readonly<Record<string, VendorPreset>> = {
  google: {
    authorizeUrl: "https://accounts.google.com/o/oauth2/v2/auth",
    tokenUrl: "https://oauth2.googleapis.com/token",
    revokeUrl: "https://oauth2.googleapis.com/revoke",
    pkce: true,
    authorizeParams: offlineConsent,
  },
  microsoft: {
    authorizeUrl: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    tokenUrl: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    scopes: ["offline_access"],
    pkce: true,
  },
  slack: { authorizeUrl: "https://slack.com/oauth/v2/authorize", tokenUrl: "https://slack.com/api/oauth.v2.access", pkce: false },
  hubspot: { authorizeUrl: "https://app.hubspot.com/oauth/authorize", tokenUrl: "https://api.hubapi.com/oauth/v1/token", pkce: false },
  zoho: {
    authorizeUrl: "https://accounts.zoho.com/oauth/v2/auth",
    tokenUrl: "https://accounts.zoho.com/oauth/v2/token",
    pkce: false,
    authorizeParams: offlineConsent,
  },
  atlassian: {
    authorizeUrl: "https://auth.atlassian.com/authorize",
    tokenUrl: "https://auth.atlassian.com/oauth/token",
    scopes: ["offline_access"],
    pkce: true,
    authorizeParams: { audience: "api.atlassian.com", prompt: "consent" },
  },
  box: { authorizeUrl: "https://account.box.com/api/oauth2/authorize", tokenUrl: "https://api.box.com/oauth2/token", pkce: false },
  dropbox: {
    authorizeUrl: "https://www.dropbox.com/oauth2/authorize",
    tokenUrl: "https://api.dropboxapi.com/oauth2/token",
    pkce: true,
    authorizeParams: { token_access_type: "offline" },
  },
  github: { authorizeUrl: "https://github.com/login/oauth/authorize", tokenUrl: "https://github.com/login/oauth/access_token", pkce: true },
  mailchimp: { authorizeUrl: "https://login.mailchimp.com/oauth2/authorize", tokenUrl: "https://login.mailchimp.com/oauth2/token", pkce: false },
  reddit: {
    authorizeUrl: "https://www.reddit.com/api/v1/authorize",
    tokenUrl: "https://www.reddit.com/api/v1/access_token",
    revokeUrl: "https://www.reddit.com/api/v1/revoke_token",
    pkce: false,
    authorizeParams: { duration: "permanent" },
  },
  salesforce: {
    authorizeUrl: "https://login.salesforce.com/services/oauth2/authorize",
    tokenUrl: "https://login.salesforce.com/services/oauth2/token",
    revokeUrl: "https://login.salesforce.com/services/oauth2/revoke",
    scopes: ["refresh_token"],
    pkce: true,
  },
  twitter: {
    authorizeUrl: "https://twitter.com/i/oauth2/authorize",
    tokenUrl: "https://api.twitter.com/2/oauth2/token",
    revokeUrl: "https://api.twitter.com/2/oauth2/revoke",
    pkce: true,
  },
  xero: {
    authorizeUrl: "https://login.xero.com/identity/connect/authorize",
    tokenUrl: "https://identity.xero.com/connect/token",
    revokeUrl: "https://identity.xero.com/connect/revocation",
    scopes: ["offline_access"],
    pkce: true,
  },
  blackbaud: { authorizeUrl: "https://app.blackbaud.com/oauth/authorize", tokenUrl: "https://oauth2.sky.blackbaud.com/token", pkce: false },
  "stack-exchange": { authorizeUrl: "https://stackoverflow.com/oauth", tokenUrl: "https://stackoverflow.com/oauth/access_token/json", pkce: false },
};
