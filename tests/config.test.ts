import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { ConfigError, loadConfig, OAUTH_APP_SETTINGS, parseDuration, SETTINGS } from "../src/config/index.ts";
import { BUN, MAIN, ROOT, startTestGateway, tempDir } from "./helpers/gateway.ts";

describe("loadConfig", () => {
  test("defaults", () => {
    const config = loadConfig({});
    expect(config.listen).toEqual({ host: "", port: 8080 });
    expect(config.proxyPort).toBe(8081);
    expect(config.dbUrl).toBe(`sqlite:${join(process.cwd(), "data", "gigmcp.db")}`);
    expect(config.logLevel).toBe("info");
    expect(config.idleTimeoutMs).toBe(600_000);
    expect(config.sandbox).toBe("bwrap");
    expect(config.publicUrl).toBeUndefined();
  });

  test("parses every kind of value", () => {
    const config = loadConfig({
      GIG_LISTEN: "[::1]:9000",
      GIG_PROXY_PORT: "9001",
      GIG_DATA_DIR: "/srv/gig",
      GIG_DB_URL: "sqlite:other.db",
      GIG_PUBLIC_URL: "https://mcp.example.com/",
      GIG_ALLOWED_ORIGINS: "https://a.example.com, http://localhost:3000",
      GIG_LOG_LEVEL: "debug",
      GIG_IDLE_TIMEOUT: "90s",
      GIG_CALL_TIMEOUT: "500ms",
      GIG_SESSION_IDLE_TIMEOUT: "1h",
      GIG_SANDBOX: "off",
    });
    expect(config.listen).toEqual({ host: "::1", port: 9000 });
    expect(config.dbUrl).toBe("sqlite:/srv/gig/other.db");
    expect(config.publicUrl?.origin).toBe("https://mcp.example.com");
    expect(config.allowedOrigins).toEqual(["https://a.example.com", "http://localhost:3000"]);
    expect([config.idleTimeoutMs, config.callTimeoutMs, config.sessionIdleTimeoutMs]).toEqual([90_000, 500, 3_600_000]);
  });

  test.each([
    ["GIG_LISTEN", "8080"],
    ["GIG_LISTEN", "example.com:80"],
    ["GIG_LISTEN", ":99999"],
    ["GIG_PROXY_PORT", "0"],
    ["GIG_PROXY_PORT", "http"],
    ["GIG_DB_URL", "mysql://x"],
    ["GIG_PUBLIC_URL", "ftp://x"],
    ["GIG_ALLOWED_ORIGINS", "https://a.example.com/path"],
    ["GIG_LOG_LEVEL", "verbose"],
    ["GIG_IDLE_TIMEOUT", "10"],
    ["GIG_IDLE_TIMEOUT", "10ms"],
    ["GIG_SANDBOX", "yes"],
  ])("%s=%s is refused, naming the variable and what is allowed", (name, value) => {
    const setting = Object.values(SETTINGS).find((candidate) => candidate.env === name)!;
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(`${name}=${JSON.stringify(value)} is not valid: expected ${setting.allowed}`);
  });

  test("GIG_DB_URL takes a Postgres URL as given; a bad one is refused without echoing its password", () => {
    expect(loadConfig({ GIG_DB_URL: "postgres://gig:s3cret@127.0.0.1:5432/gig" }).dbUrl).toBe("postgres://gig:s3cret@127.0.0.1:5432/gig");
    expect(loadConfig({ GIG_DB_URL: "postgresql://gig@db.internal/gig?sslmode=require" }).dbUrl).toBe("postgresql://gig@db.internal/gig?sslmode=require");
    let message = "";
    try {
      loadConfig({ GIG_DB_URL: "postgres://gig:s3cret@127.0.0.1:5432" });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('GIG_DB_URL="postgres://gig:***@127.0.0.1:5432" is not valid');
    expect(message).not.toContain("s3cret");
  });

  test("durations", () => {
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("2h")).toBe(7_200_000);
    expect(parseDuration("1.5s")).toBeUndefined();
  });

  test("a bad value makes the executable exit 2 with the variable's name", () => {
    const result = Bun.spawnSync([BUN, MAIN, "serve"], { env: { PATH: process.env.PATH!, GIG_IDLE_TIMEOUT: "soon", GIG_DATA_DIR: tempDir() } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr.toString()).toContain('GIG_IDLE_TIMEOUT="soon" is not valid: expected a duration');
  });

  test("the README documents every setting with its default", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    for (const setting of Object.values(SETTINGS)) {
      const row = readme.split("\n").find((line) => line.startsWith(`| \`${setting.env}\``));
      expect(row, `${setting.env} missing from the README table`).toBeDefined();
      if (setting.default) expect(row).toContain(`\`${setting.default}\``);
    }
    // The per-vendor settings are documented once each, as their pattern.
    for (const setting of Object.values(OAUTH_APP_SETTINGS)) {
      expect(readme.split("\n").some((line) => line.startsWith(`| \`${setting.env}\``)), `${setting.env} missing from the README table`).toBe(true);
    }
  });

  test("GIG_OAUTH_<VENDOR>_* make one app per vendor; a misspelt or incomplete one stops the gateway", () => {
    const secretFile = join(tempDir(), "secret");
    writeFileSync(secretFile, "file-secret\n");
    const config = loadConfig({
      GIG_OAUTH_GOOGLE_CLIENT_ID: "g-id",
      GIG_OAUTH_GOOGLE_CLIENT_SECRET_FILE: secretFile,
      GIG_OAUTH_STACK_EXCHANGE_CLIENT_ID: "se-id",
      GIG_OAUTH_STACK_EXCHANGE_SCOPES: "read_inbox no_expiry",
      GIG_OAUTH_STACK_EXCHANGE_PKCE: "false",
      GIG_OAUTH_STACK_EXCHANGE_TOKEN_URL: "https://stackoverflow.com/oauth/access_token/json",
      GIG_OAUTH_STACK_EXCHANGE_REVOKE_URL: "https://auth.example/revoke",
    });
    expect(config.oauthApps).toEqual([
      { vendor: "google", clientId: "g-id", clientSecret: "file-secret", authorizeUrl: undefined, tokenUrl: undefined, revokeUrl: undefined, scopes: undefined, pkce: undefined },
      {
        vendor: "stack-exchange",
        clientId: "se-id",
        clientSecret: undefined,
        authorizeUrl: undefined,
        tokenUrl: "https://stackoverflow.com/oauth/access_token/json",
        revokeUrl: "https://auth.example/revoke",
        scopes: ["read_inbox", "no_expiry"],
        pkce: false,
      },
    ]);
    expect(loadConfig({}).oauthApps).toEqual([]);
    for (const [env, message] of [
      [{ GIG_OAUTH_GOOGLE_CLIENTID: "x" }, "GIG_OAUTH_GOOGLE_CLIENTID is not a setting"],
      [{ GIG_OAUTH_GOOGLE_CLIENT_SECRET: "s" }, "GIG_OAUTH_GOOGLE_CLIENT_ID is not set"],
      [{ GIG_OAUTH_GOOGLE_CLIENT_ID: "x", GIG_OAUTH_GOOGLE_TOKEN_URL: "http://example.com/token" }, "GIG_OAUTH_GOOGLE_TOKEN_URL=\"http://example.com/token\" is not valid"],
      [{ GIG_OAUTH_GOOGLE_CLIENT_ID: "x", GIG_OAUTH_GOOGLE_REVOKE_URL: "ftp://example.com/revoke" }, "GIG_OAUTH_GOOGLE_REVOKE_URL=\"ftp://example.com/revoke\" is not valid"],
      [{ GIG_OAUTH_GOOGLE_CLIENT_ID: "x", GIG_OAUTH_GOOGLE_PKCE: "yes" }, "GIG_OAUTH_GOOGLE_PKCE=\"yes\" is not valid: expected true or false"],
      [{ GIG_OAUTH_GOOGLE_CLIENT_ID: "x", GIG_OAUTH_GOOGLE_CLIENT_SECRET: "a", GIG_OAUTH_GOOGLE_CLIENT_SECRET_FILE: secretFile }, "both set"],
      [{ GIG_OAUTH_GOOGLE_CLIENT_ID: "x", GIG_OAUTH_GOOGLE_CLIENT_SECRET_FILE: "/nonexistent/secret" }, "cannot be read: ENOENT"],
    ] as const) {
      expect(() => loadConfig(env)).toThrow(message);
    }
    // A secret's value is never repeated in an error.
    expect(() => loadConfig({ GIG_OAUTH_GOOGLE_CLIENT_SECRET: "s3cret-value" })).not.toThrow("s3cret-value");
  });
});

test("GIG_DASHBOARD=embedded on an executable without a dashboard built in says how to get one", async () => {
  // Under `bun test` nothing is embedded, exactly like an executable built without web/out.
  const started = startTestGateway({ GIG_DASHBOARD: "embedded" });
  await expect(started).rejects.toThrow("this gigmcp has no dashboard built in: build it with `make build`");
});
