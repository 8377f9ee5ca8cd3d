/**
 * The dashboard in a real browser (Debian's chromium through playwright-core)
 * against a real gateway serving its static export: log in, create a profile,
 * add echo, create a token and call echo_echo with an SDK client using the
 * token read from the page; set a credential that never comes back; see the
 * audit; a member gets no admin page. Screenshots go to tests/artifacts/.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { connect, ROOT, startTestGateway, text, type TestGateway } from "./helpers/gateway.ts";

const EXPORT = join(ROOT, "web/out");
const SCREENSHOTS = join(ROOT, "tests/artifacts/screenshots");
const PASSWORD = "correct horse battery staple";

let gateway: TestGateway;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(join(EXPORT, "index.html"))) throw new Error("the dashboard is not built: make test builds web/out first (cd web && npm ci && npm run build)");
  mkdirSync(SCREENSHOTS, { recursive: true });
  gateway = await startTestGateway({ GIG_DASHBOARD_DIR: EXPORT }, { api: true });
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
});

async function logIn(email: string): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${gateway.url}/login`);
  await page.getByTestId("login-email").fill(email);
  await page.getByTestId("login-password").fill(PASSWORD);
  await page.getByTestId("login-submit").click();
  await page.waitForURL((url) => !url.pathname.startsWith("/login"));
  return page;
}

test("an admin creates a profile with echo and a token in the browser, and an MCP client uses that token", async () => {
  const page = await logIn("admin@test");
  await page.goto(`${gateway.url}/profiles`);
  await page.screenshot({ path: join(SCREENSHOTS, "profiles.png"), fullPage: true });
  await page.getByLabel("Profile name").fill("browser");
  await page.getByRole("button", { name: "Create profile" }).click();
  await page.getByTestId("profile-browser").waitFor();
  await page.getByTestId("add-server-select-browser").selectOption("echo");
  await page.getByTestId("add-server-submit-browser").click();
  await page.getByTestId("profile-server-browser-echo").waitFor();
  await page.getByTestId("create-token-submit-browser").click();
  const token = (await page.getByTestId("new-token").textContent())!.trim();
  expect(token).toMatch(/^gig_/);
  await page.screenshot({ path: join(SCREENSHOTS, "token.png"), fullPage: true });
  const client = await connect(`${gateway.url}/mcp/p/browser`, token);
  expect(text(await client.callTool({ name: "echo_echo", arguments: { message: "from the browser" } }))).toBe("from the browser");
  await client.close();
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
  await page.screenshot({ path: join(SCREENSHOTS, "credentials.png"), fullPage: true });
  await page.goto(`${gateway.url}/audit`);
  await page.getByText("credential.set").first().waitFor();
  await page.getByText("token.create").first().waitFor();
  await page.screenshot({ path: join(SCREENSHOTS, "audit.png"), fullPage: true });
  await page.close();
}, 60_000);

test("a member does not get the admin pages", async () => {
  const page = await logIn("member@test");
  await page.goto(`${gateway.url}/users`);
  await page.getByTestId("users-admins-only").waitFor();
  expect(await page.content()).not.toContain("admin@test");
  await page.screenshot({ path: join(SCREENSHOTS, "users-member.png"), fullPage: true });
  await page.close();
}, 60_000);
