import { test, expect, type Page } from "@playwright/test";
import { oidcBaseURL } from "../playwright.config";

// These tests sign in themselves, so they start with no session.
test.use({ storageState: { cookies: [], origins: [] } });

async function hydrated(page: Page) {
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
}

test("sign-in through a real OpenID provider lands on the overview with the role its groups give; sign-out ends it", async ({ page }) => {
  await page.goto(`${oidcBaseURL}/funds`);
  await expect(page).toHaveURL(/\/login\?next=%2Ffunds$/);
  await page.getByRole("button", { name: "Sign in with the test provider" }).click();

  // The provider's own sign-in form (oidc-provider's development interaction).
  await page.locator('input[name="login"]').fill("alice");
  await page.locator('input[name="password"]').fill("any password");
  await page.getByRole("button", { name: "Sign-in" }).click();

  await expect(page).toHaveURL(`${oidcBaseURL}/funds`);
  await hydrated(page);
  await expect(page.getByTestId("signed-in-as")).toHaveText("Alice Ops");
  await expect(page.locator(".signed-in .roles")).toHaveText("operator, approver");
  await page.goto(`${oidcBaseURL}/`);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Services");

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByText("You are signed out.")).toBeVisible();
  await page.goto(`${oidcBaseURL}/`);
  await expect(page).toHaveURL(/\/login\?next=%2F$/);
});

test("a business user signing in at the provider lands on the overview as a viewer", async ({ page }) => {
  await page.goto(`${oidcBaseURL}/login`);
  await page.getByRole("button", { name: "Sign in with the test provider" }).click();
  await page.locator('input[name="login"]').fill("carol");
  await page.locator('input[name="password"]').fill("any password");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await expect(page).toHaveURL(`${oidcBaseURL}/`);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Services");
  await expect(page.getByTestId("signed-in-as")).toHaveText("Carol Business");
  await expect(page.locator(".signed-in .roles")).toHaveText("viewer");
});

test("demo users sign in with one click; a viewer gets no action controls", async ({ page }) => {
  await page.goto("/services/payments");
  await expect(page).toHaveURL(/\/login\?next=/);
  await page.getByRole("button", { name: "Sign in as Vera Viewer" }).click();
  await expect(page).toHaveURL(/\/services\/payments$/);
  await hydrated(page);
  await expect(page.getByTestId("signed-in-as")).toHaveText("Vera Viewer");
  const groups = page.locator("table.groups tbody tr");
  await expect(groups.first()).toBeVisible();
  await expect(groups.first().getByRole("link", { name: "Show sagas" })).toBeVisible();
  await expect(page.getByRole("button", { name: /^Select all/ })).toHaveCount(0);

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByText("You are signed out.")).toBeVisible();
});

test("an operator sees the controls a viewer does not", async ({ page }) => {
  await page.goto("/login?next=/services/payments");
  await page.getByRole("button", { name: "Sign in as Bob Operator" }).click();
  await hydrated(page);
  await expect(page.getByTestId("signed-in-as")).toHaveText("Bob Operator");
  await expect(page.getByRole("button", { name: /^Select all/ }).first()).toBeVisible();
});

test("a personal API token is shown once, works with curl-like requests, and can be revoked", async ({ page, playwright }) => {
  await page.goto("/login?next=/account");
  await page.getByRole("button", { name: "Sign in as Ada Admin" }).click();
  await expect(page).toHaveURL(/\/account$/);
  await hydrated(page);
  await page.getByLabel("What it is for").fill("nightly report");
  await page.getByRole("button", { name: "Create token" }).click();
  const secret = (await page.getByTestId("new-token-secret").textContent())!.trim();
  expect(secret).toMatch(/^rbt_/);
  const row = page.locator("table.tokens tbody tr", { hasText: "nightly report" });
  await expect(row).toContainText("live");

  // A script with no cookies, only the token.
  const script = await playwright.request.newContext({ baseURL: page.url() });
  const me = await script.get("/api/v1/me", { headers: { Authorization: `Bearer ${secret}` } });
  expect(me.status()).toBe(200);
  expect((await me.json()).name).toBe("Ada Admin");

  // The secret is not shown again after a reload.
  await page.reload();
  await hydrated(page);
  await expect(page.getByText(secret)).toHaveCount(0);
  await row.getByRole("button", { name: "Revoke" }).click();
  await expect(row).toContainText("revoked");
  const after = await script.get("/api/v1/me", { headers: { Authorization: `Bearer ${secret}` } });
  expect(after.status()).toBe(401);
  await script.dispose();
});

async function signInAtProvider(page: Page, login: string) {
  await page.goto(`${oidcBaseURL}/login`);
  await page.getByRole("button", { name: "Sign in with the test provider" }).click();
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any password");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await expect(page).toHaveURL(`${oidcBaseURL}/`);
  await hydrated(page);
}

test("an admin ends a person's access on the Access screen, and that person's next page asks them to sign in", async ({ browser }) => {
  const signedOut = { storageState: { cookies: [], origins: [] } };
  const dave = await (await browser.newContext(signedOut)).newPage();
  await signInAtProvider(dave, "dave");
  const adele = await (await browser.newContext(signedOut)).newPage();
  await signInAtProvider(adele, "adele");

  await adele.getByRole("link", { name: "Access", exact: true }).click();
  await expect(adele).toHaveURL(`${oidcBaseURL}/access`);
  await expect(adele.getByRole("heading", { level: 1 })).toHaveText("Access");
  const daveRow = adele.getByRole("row", { name: /Dave Departing/ });
  await expect(daveRow.getByRole("cell").nth(1)).toHaveText("1");
  await daveRow.getByRole("link", { name: "Dave Departing" }).click();
  await expect(adele.getByRole("heading", { level: 2 })).toContainText("#dave");
  await expect(adele.getByText(/Dave Departing since/)).toBeVisible();

  await adele.getByLabel("Why (kept in the audit log)").fill("left the company");
  await adele.getByRole("button", { name: "End all access" }).click();
  await expect(adele.getByTestId("access-ended")).toContainText("Ended 1 session(s) and revoked 0 token(s)");
  await expect(adele.getByRole("row", { name: /Dave Departing/ })).toHaveCount(0);

  await dave.goto(`${oidcBaseURL}/funds`);
  await expect(dave).toHaveURL(/\/login\?next=%2Ffunds$/);
});

test("the Access screen is for admins only", async ({ page }) => {
  await signInAtProvider(page, "carol");
  await expect(page.getByRole("link", { name: "Access", exact: true })).toHaveCount(0);
  const response = await page.goto(`${oidcBaseURL}/access`);
  expect(response?.status()).toBe(403);
  await expect(page.getByRole("alert")).toContainText("admin role");
});
