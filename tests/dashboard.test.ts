/**
 * The dashboard in a real browser (Debian's chromium through playwright-core)
 * against a real gateway serving its static export, with a registry signed for
 * the test: log in, create a profile, add echo, create a token and call
 * echo_echo with an SDK client using the token read from the page; browse the
 * catalog, install and uninstall a toolspec server, see echo's sandbox
 * running; set a credential that never comes back; filter and export the
 * audit; manage users; the overview chart; a member gets no admin page nor
 * install button nor OAuth apps; an admin registers an OAuth app, connects
 * through a real authorization server's login and consent pages in a second
 * window, reconnects and disconnects; the phone width. Screenshots go to tests/artifacts/
 * (UPDATE_SCREENSHOTS=1 also refreshes the README's copies in docs/screenshots/).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { connect, freePort, probeSpec, ROOT, startTestGateway, tempDir, text, type TestGateway } from "./helpers/gateway.ts";
import { startOidcProvider, type TestProvider } from "./helpers/oidc-provider.ts";
import { generateSigningKey, MANIFESTS, syntheticIndex, writeSignedIndex } from "./helpers/registry.ts";

const EXPORT = join(ROOT, "web/out");
const SCREENSHOTS = join(ROOT, "tests/artifacts/screenshots");
const README_SCREENSHOTS = join(ROOT, "docs/screenshots");
const PASSWORD = "correct horse battery staple";
const DESKTOP = { width: 1280, height: 800 };
/** A vendor without built-in endpoints, standing in for Google or Slack: the test's authorization server. */
const VENDOR = "testvendor";

let gateway: TestGateway;
let browser: Browser;
let provider: TestProvider;

beforeAll(async () => {
  if (!existsSync(join(EXPORT, "index.html"))) throw new Error("the dashboard is not built: make test builds web/out first (cd web && npm ci && npm run build)");
  mkdirSync(SCREENSHOTS, { recursive: true });
  const key = generateSigningKey();
  const indexDir = tempDir("gigmcp-dashboard-index-");
  writeSignedIndex(indexDir, { ...syntheticIndex(), generated: new Date().toISOString().replace(/\.\d+Z$/, "Z") }, key);
  // The authorization server must know the gateway's redirect URI before either starts: fix the port.
  const base = `http://127.0.0.1:${freePort()}`;
  provider = await startOidcProvider({ redirectUri: `${base}/api/v1/oauth/callback`, refreshTokens: true });
  gateway = await startTestGateway(
    {
      GIG_LISTEN: base.slice("http://".length),
      GIG_PUBLIC_URL: base,
      GIG_DASHBOARD_DIR: EXPORT,
      GIG_REGISTRY_URL: join(indexDir, "index.json"),
      GIG_REGISTRY_PUBKEY: key.publicKeyHex,
      GIG_REGISTRY_TOOLSPECS: MANIFESTS,
    },
    { api: true },
  );
  await gateway.auth!.setPassword(gateway.admin.id, PASSWORD);
  const member = await gateway.store.users.create({ email: "member@test", role: "member" });
  await gateway.auth!.setPassword(member.id, PASSWORD);
  await gateway.addServer({ name: "keyed", command: "/bin/cat", credentials: [{ id: "key", type: "api_key", header: "Authorization", format: "Bearer {token}" }] });
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    // Root in CI: chromium's own sandbox needs an unprivileged user; nothing but loopback is contacted.
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps", "--metrics-recording-only"],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await provider?.close();
});

/** A full-page screenshot into the artifacts, and on request the viewport into the README's copies. */
async function shoot(page: Page, name: string): Promise<void> {
  // The pointer would otherwise leave a hover state (a chart tooltip) in the picture.
  await page.mouse.move(0, 0);
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  if (process.env.UPDATE_SCREENSHOTS === "1") await page.screenshot({ path: join(README_SCREENSHOTS, `${name}.png`) });
}

/** Polls `check` until it holds (the page updates on its own: fetches, the live tail, timers). */
async function until(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`still not true after ${timeoutMs} ms: ${check}`);
    await Bun.sleep(100);
  }
}

async function logIn(email: string, viewport = DESKTOP): Promise<Page> {
  const page = await browser.newPage({ viewport });
  await page.goto(`${gateway.url}/login`);
  await page.getByTestId("login-submit").waitFor();
  await page.screenshot({ path: join(SCREENSHOTS, "login.png") });
  await page.getByTestId("login-email").fill(email);
  await page.getByTestId("login-password").fill(PASSWORD);
  await page.getByTestId("login-submit").click();
  await page.waitForURL((url) => !url.pathname.startsWith("/login"));
  return page;
}

test("an admin creates a profile with echo and a token in the browser, and an MCP client uses that token", async () => {
  const page = await logIn("admin@test");
  await page.goto(`${gateway.url}/profiles`);
  await page.getByLabel("Profile name").fill("browser");
  await page.getByRole("button", { name: "Create profile" }).click();
  await page.getByTestId("profile-browser").waitFor();
  await page.getByTestId("add-server-select-browser").selectOption("echo");
  // The picker lists echo's tools from a backend: expose two of them only.
  await page.getByTestId("tool-browser-echo").check();
  await page.getByTestId("tool-browser-add").check();
  await page.getByTestId("add-server-submit-browser").click();
  await page.getByTestId("profile-server-browser-echo").waitFor();
  expect(await page.getByTestId("profile-server-browser-echo").textContent()).toContain("tools: echo, add");
  await page.getByTestId("create-token-submit-browser").click();
  const token = (await page.getByTestId("new-token").textContent())!.trim();
  expect(token).toMatch(/^gig_/);
  await shoot(page, "profiles");
  const client = await connect(`${gateway.url}/mcp/p/browser`, token);
  expect(text(await client.callTool({ name: "echo_echo", arguments: { message: "from the browser" } }))).toBe("from the browser");
  expect((await client.listTools()).tools.map((tool) => tool.name).sort()).toEqual(["echo_add", "echo_echo"]);
  await client.close();
  await page.close();
}, 60_000);

test("an admin browses the catalog, installs a toolspec server after seeing its grants, uninstalls it, and sees echo's sandbox running", async () => {
  const page = await logIn("admin@test");
  await page.goto(`${gateway.url}/servers`);
  await page.getByTestId("catalog-hackernews").waitFor();
  expect(await page.getByTestId("catalog-list").locator("> li").count()).toBe(40);
  // The first test's MCP call started echo; the table refreshes on its own.
  await page.getByTestId("running-echo").waitFor();
  expect(await page.getByTestId("running-echo").textContent()).toContain("running");
  await shoot(page, "servers");

  await page.getByTestId("catalog-search").fill("hacker news");
  await page.getByTestId("catalog-slack").waitFor({ state: "detached" });
  await page.getByTestId("catalog-hackernews").waitFor();
  await page.getByTestId("catalog-search").fill("");
  await page.getByTestId("catalog-category").selectOption("social");
  await page.getByTestId("catalog-slack").waitFor({ state: "detached" });
  await page.getByTestId("catalog-hackernews").waitFor();

  // Keyboard: Escape closes the dialog without installing.
  await page.getByTestId("install-hackernews").click();
  await page.getByTestId("install-dialog").waitFor();
  await page.keyboard.press("Escape");
  await page.getByTestId("install-dialog").waitFor({ state: "detached" });

  await page.getByTestId("install-hackernews").click();
  const dialog = page.getByTestId("install-dialog");
  expect(await dialog.getByTestId("install-egress").textContent()).toContain("hn.algolia.com");
  expect(await dialog.getByTestId("install-credentials").textContent()).toBe("no credentials");
  expect(await dialog.getByTestId("install-confirm").isDisabled()).toBe(true);
  expect((await gateway.store.servers.list()).map((server) => server.name)).not.toContain("hackernews");
  await dialog.getByTestId("install-consent").check();
  await dialog.getByTestId("install-confirm").click();
  await page.getByTestId("installed-hackernews").waitFor();
  await page.getByTestId("catalog-hackernews").getByTestId("catalog-installed").waitFor();
  expect((await gateway.store.servers.list()).find((server) => server.name === "hackernews")?.installed).toBeTruthy();

  await page.getByTestId("uninstall-hackernews").click();
  await page.getByTestId("confirm-action").click();
  await page.getByTestId("installed-hackernews").waitFor({ state: "detached" });
  expect((await gateway.store.servers.list()).map((server) => server.name)).not.toContain("hackernews");
  await page.close();
}, 60_000);

test("a credential set in the browser is never shown again, and the audit lists the actions", async () => {
  const page = await logIn("admin@test");
  await page.goto(`${gateway.url}/credentials`);
  await page.getByTestId("credential-server").selectOption("keyed");
  await page.getByTestId("credential-id").fill("key");
  await page.getByTestId("credential-secret").fill("sk-browser-secret");
  await page.getByTestId("credential-submit").click();
  await page.getByTestId("credential-keyed-key").waitFor();
  expect(await page.content()).not.toContain("sk-browser-secret");
  await shoot(page, "credentials");
  await page.goto(`${gateway.url}/audit`);
  await page.getByText("credential.set").first().waitFor();
  await page.getByText("token.create").first().waitFor();
  await page.close();
}, 60_000);

test("the audit filters by decision, tails live and exports CSV", async () => {
  const failLogin = () =>
    fetch(`${gateway.url}/api/v1/sessions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "admin@test", password: "not the password" }) });
  expect((await failLogin()).status).toBe(401);
  const page = await logIn("admin@test");
  await page.goto(`${gateway.url}/audit`);
  await page.getByText("credential.set").first().waitFor();
  const everything = await page.getByTestId("audit-row").count();
  await page.getByTestId("audit-filter-decision").selectOption("deny");
  await page.getByTestId("audit-apply").click();
  const decisions = () => page.getByTestId("audit-decision").evaluateAll((badges) => badges.map((badge) => badge.getAttribute("data-decision")));
  await until(async () => {
    const shown = await decisions();
    return shown.length > 0 && shown.every((decision) => decision === "deny");
  });
  const denies = await decisions();
  expect(denies.length).toBeLessThan(everything);
  await shoot(page, "audit");

  await page.getByTestId("audit-live").check();
  // Give the stream a moment to open before the event it must deliver.
  await Bun.sleep(1000);
  expect((await failLogin()).status).toBe(401);
  await until(async () => (await page.getByTestId("audit-row").count()) === denies.length + 1);
  expect((await decisions()).every((decision) => decision === "deny")).toBe(true);

  const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("audit-export").click()]);
  const csv = readFileSync((await download.path())!, "utf8");
  const lines = csv.trim().split(/\r?\n/);
  expect(lines[0]).toBe("id,time,action,decision,actor,tenant,detail");
  expect(lines.length).toBe(denies.length + 2);
  expect(csv).toContain("auth.login");
  expect(csv).not.toContain("credential.set");

  await page.getByTestId("audit-live").uncheck();
  for (let n = 0; n < 55; n++) await gateway.store.audit.record({ action: "test.paging", decision: "allow", actor: "admin@test", tenantId: null, detail: { n } });
  await page.getByTestId("audit-filter-decision").selectOption("");
  await page.getByTestId("audit-filter-action").fill("test.paging");
  await page.getByTestId("audit-apply").click();
  await until(async () => (await page.getByTestId("audit-row").count()) === 50);
  await page.getByTestId("audit-older").click();
  await until(async () => (await page.getByTestId("audit-row").count()) === 55);
  await page.getByTestId("audit-older").waitFor({ state: "detached" });

  // Admins narrow to one user's tenant.
  const member = (await gateway.store.users.byEmail("member@test"))!;
  await gateway.store.audit.record({ action: "test.tenant", decision: "allow", actor: "member@test", tenantId: member.id, detail: {} });
  await page.getByTestId("audit-filter-action").fill("");
  await page.getByTestId("audit-filter-tenant").selectOption({ label: "member@test" });
  await page.getByTestId("audit-apply").click();
  await page.getByText("test.tenant").waitFor();
  expect(await page.getByText("test.paging").count()).toBe(0);
  await page.close();
}, 60_000);

test("an admin creates a user, sees a weak password refused, and changes the user's role", async () => {
  const page = await logIn("admin@test");
  await page.goto(`${gateway.url}/users`);
  await page.getByTestId("user-email").fill("new@test");
  await page.getByTestId("user-password").fill("short");
  await page.getByTestId("create-user-submit").click();
  await page.getByTestId("create-user-error").waitFor();
  expect((await gateway.store.users.list()).map((user) => user.email)).not.toContain("new@test");
  await page.getByTestId("user-password").fill(PASSWORD);
  await page.getByTestId("create-user-submit").click();
  await page.getByTestId("create-user-done").waitFor();
  await page.getByTestId("user-role-new@test").selectOption("admin");
  await page.getByTestId("users-role-notice").waitFor();
  expect((await gateway.store.users.list()).find((user) => user.email === "new@test")?.role).toBe("admin");
  await shoot(page, "users");
  await page.close();
}, 60_000);

test("the overview shows the counts and a chart of calls and denies", async () => {
  const page = await logIn("admin@test");
  await page.goto(`${gateway.url}/`);
  await page.getByTestId("overview-chart").locator("svg.recharts-surface").first().waitFor();
  await until(async () => (await page.getByTestId("count-profiles").textContent()) === "1");
  expect(await page.getByTestId("count-servers").textContent()).toBe("2");
  await shoot(page, "overview");
  await page.close();
}, 60_000);

test("an admin registers an OAuth app, connects through the vendor's login and consent in a new window, reconnects, and disconnects", async () => {
  // Registered after the overview test, which counts servers.
  await gateway.addServer(probeSpec("files", { credentials: [{ id: "files", type: "oauth2", vendor: VENDOR, scopes: ["files.read"], header: "Authorization", format: "Bearer {token}" }] }));
  const page = await logIn("admin@test");
  await page.goto(`${gateway.url}/connections`);
  const row = page.getByTestId(`connection-${VENDOR}`);
  await row.getByTestId("connection-no-app").waitFor();
  expect(await row.getByTestId("connection-status").textContent()).toBe("not connected");
  expect(await row.textContent()).toContain("files");
  expect(await page.getByTestId("redirect-uri").textContent()).toBe(`${gateway.url}/api/v1/oauth/callback`);

  const { clientId, clientSecret } = provider.clients.primary;
  await page.getByTestId("oauth-app-vendor").fill(VENDOR);
  await page.getByTestId("oauth-app-client-id").fill(clientId);
  await page.getByTestId("oauth-app-client-secret").fill(clientSecret);
  await page.getByTestId("oauth-app-authorize-url").fill(`${provider.issuer}/auth`);
  await page.getByTestId("oauth-app-token-url").fill(`${provider.issuer}/token`);
  await page.getByTestId("oauth-app-scopes").fill("openid");
  await page.getByTestId("oauth-app-submit").click();
  await page.getByTestId("oauth-app-notice").waitFor();
  expect(await page.getByTestId(`oauth-app-${VENDOR}`).getByTestId("oauth-app-secret").textContent()).toBe("set");
  expect(await page.content()).not.toContain(clientSecret);
  expect(await page.getByTestId("oauth-app-client-secret").inputValue()).toBe("");

  // Connect opens the vendor in a second window; the dashboard polls until the redirect came back.
  const [vendorPage] = await Promise.all([page.waitForEvent("popup"), row.getByTestId(`connect-${VENDOR}`).click()]);
  await page.getByTestId("connection-pending").waitFor();
  await vendorPage.locator('input[name="login"]').fill("alice");
  await vendorPage.locator('input[name="password"]').fill("any-password");
  await vendorPage.getByRole("button", { name: "Sign-in" }).click();
  await vendorPage.getByRole("button", { name: "Continue" }).click();
  await vendorPage.waitForURL((url) => url.pathname === "/api/v1/oauth/callback");
  expect(await vendorPage.textContent("body")).toContain(`Connected ${VENDOR}`);
  await vendorPage.close();
  await page.getByTestId("connection-notice").waitFor();
  expect(await row.getByTestId("connection-status").textContent()).toBe("connected");
  expect(await row.textContent()).toContain("files.read");
  expect((await gateway.store.oauthConnections.get(VENDOR, gateway.admin.id))?.status).toBe("connected");
  await shoot(page, "connections");

  // The vendor refused a refresh (as the gateway records it): the page says why and offers to reconnect.
  await gateway.store.oauthConnections.markNeedsReconnect(VENDOR, gateway.admin.id, "the vendor refused the refresh token (invalid_grant)");
  await page.reload();
  await row.getByTestId("connection-problem").waitFor();
  expect(await row.getByTestId("connection-status").textContent()).toBe("needs reconnect");
  expect(await row.getByTestId("connection-problem").textContent()).toContain("invalid_grant");
  const [again] = await Promise.all([page.waitForEvent("popup"), row.getByRole("button", { name: "Reconnect" }).click()]);
  // Still signed in at the vendor, and consent was given: it may redirect straight back.
  await again.locator('button:has-text("Continue"), body:has-text("Connected")').first().waitFor();
  if (await again.getByRole("button", { name: "Continue" }).count()) await again.getByRole("button", { name: "Continue" }).click();
  await again.waitForURL((url) => url.pathname === "/api/v1/oauth/callback");
  await again.close();
  await until(async () => (await row.getByTestId("connection-status").textContent()) === "connected");
  expect(await row.getByTestId("connection-problem").count()).toBe(0);

  await row.getByTestId(`disconnect-${VENDOR}`).click();
  await page.getByTestId("confirm-action").click();
  await until(async () => (await row.getByTestId("connection-status").textContent()) === "not connected");
  expect(await gateway.store.oauthConnections.get(VENDOR, gateway.admin.id)).toBeUndefined();
  await page.close();
}, 60_000);

test("at phone width every page fits and the menu opens", async () => {
  const page = await logIn("admin@test", { width: 375, height: 812 });
  const overflowing: string[] = [];
  for (const path of ["/", "/profiles", "/servers", "/credentials", "/connections", "/audit", "/users"]) {
    await page.goto(`${gateway.url}${path}`);
    await page.getByRole("heading", { level: 1 }).waitFor();
    await until(async () => (await page.getByTestId("loading").count()) === 0);
    // Wide tables scroll inside their own box; the page itself must not.
    const width = await page.evaluate<number>("document.documentElement.scrollWidth");
    if (width > 375) overflowing.push(`${path} is ${width}px wide`);
  }
  expect(overflowing).toEqual([]);
  await page.goto(`${gateway.url}/servers`);
  await page.getByTestId("catalog-hackernews").waitFor();
  expect(await page.getByTestId("nav-servers").isVisible()).toBe(false);
  await page.getByRole("button", { name: "Menu" }).click();
  expect(await page.getByTestId("nav-servers").isVisible()).toBe(true);
  await page.getByRole("button", { name: "Menu" }).click();
  await shoot(page, "phone");
  await page.close();
}, 60_000);

test("a member does not get the admin pages", async () => {
  const page = await logIn("member@test");
  await page.goto(`${gateway.url}/servers`);
  await page.getByTestId("catalog-hackernews").waitFor();
  await page.getByTestId("catalog-admins-install").waitFor();
  expect(await page.locator('button[data-testid^="install-"], button[data-testid^="uninstall-"]').count()).toBe(0);
  expect(await page.getByTestId("nav-users").count()).toBe(0);
  // Members connect their own accounts but never see the OAuth apps.
  await page.goto(`${gateway.url}/connections`);
  await page.getByTestId(`connection-${VENDOR}`).getByTestId(`connect-${VENDOR}`).waitFor();
  expect(await page.getByTestId("oauth-apps").count()).toBe(0);
  expect(await page.getByTestId("redirect-uri").count()).toBe(0);
  await page.goto(`${gateway.url}/users`);
  await page.getByTestId("users-admins-only").waitFor();
  expect(await page.content()).not.toContain("admin@test");
  await page.screenshot({ path: join(SCREENSHOTS, "users-member.png"), fullPage: true });
  await page.close();
}, 60_000);
