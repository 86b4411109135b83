import { readFileSync } from "node:fs";
import { test, expect, type Page } from "@playwright/test";

// The README's first command as a newcomer meets it: `scripts/run-demo` (started by
// scripts/test on a free port) serves the release build; its pages must hydrate and every
// area must show the demo fleet's data. Fails if the wasm is missing, broken or built
// unlike the server.

async function hydrated(page: Page) {
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
}

/** Marks the document; a full page load loses the mark, client-side rendering keeps it. */
const mark = (page: Page) => page.evaluate(() => ((window as any).__sameDocument = true));
const stillMarked = (page: Page) => page.evaluate(() => (window as any).__sameDocument === true);

/** A demo user's API token, as `runboard demo` wrote it for curl. */
function token(login: string): string {
  const users = JSON.parse(readFileSync(`${process.env.RUNBOARD_SMOKE_DATA_DIR}/demo-users.json`, "utf8"));
  return users.find((u: { login: string }) => u.login === login).token;
}

test("scripts/run-demo serves hydrated pages with data in every area", async ({ page, browser, request }) => {
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => message.type() === "error" && errors.push(message.text()));

  // Sign in as a demo user, with one click.
  await page.goto("/login");
  await page.getByRole("button", { name: "Sign in as Alice Operator" }).click();
  await page.waitForURL((url) => url.pathname === "/");
  await hydrated(page);
  await expect(page.getByTestId("signed-in-as")).toHaveText("Alice Operator");

  // Overview: the three demo services, once the first poll has landed.
  const services = page.locator("table.services tbody tr");
  await expect(async () => {
    await page.reload();
    await expect(services.locator("th")).toHaveText(["onboarding", "payments", "payouts"], { timeout: 1_000 });
    await expect(page.getByText("Not polled yet")).toHaveCount(0, { timeout: 1_000 });
  }).toPass({ timeout: 30_000 });
  await hydrated(page);

  // Service, by a client-side navigation: no new document is loaded.
  await mark(page);
  await page.getByRole("link", { name: "onboarding", exact: true }).click();
  await expect(page).toHaveURL(/\/services\/onboarding$/);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("onboarding");
  await expect(page.locator("table.groups tbody tr").first()).toBeVisible();
  expect(await stillMarked(page)).toBe(true);

  // Batches, then one batch with its figures.
  await page.getByRole("navigation", { name: "Screens" }).getByRole("link", { name: "Batches" }).click();
  await page.locator(".service-batches", { hasText: "payouts" }).locator(".batch-card").first().getByRole("link").click();
  await expect(page).toHaveURL(/\/services\/payouts\/batches\//);
  await expect(page.locator(".figures div", { has: page.locator("dt", { hasText: "All items" }) }).locator("dd")).toHaveText(/^[1-9][\d,]*$/);
  expect(await stillMarked(page)).toBe(true);

  // Funds, with the money payments withholds.
  await page.getByRole("navigation", { name: "Screens" }).getByRole("link", { name: "Funds" }).click();
  await expect(page.getByRole("heading", { name: /^[A-Z]{3}: [\d,]+\.\d{2} withheld$/ }).first()).toBeVisible();
  expect(await stillMarked(page)).toBe(true);

  // Action: one asked for with a demo user's token, as the README's curl line does.
  const auth = { Authorization: `Bearer ${token("alice")}` };
  const failed = await (await request.get("/api/v1/services/onboarding/sagas?status=failed&limit=3", { headers: auth })).json();
  const ids = failed.sagas.map((saga: { saga_id: string }) => saga.saga_id);
  expect(ids.length).toBeGreaterThan(0);
  const created = await request.post("/api/v1/actions", {
    headers: auth,
    data: { service: "onboarding", mutation: "retrySagas", arguments: { ids } },
  });
  expect(created.status()).toBe(201);
  const action = await created.json();

  await page.goto(`/actions/${action.id}`);
  await hydrated(page);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("retrySagas on onboarding");
  await expect(page.getByTestId("entities").locator("tbody tr")).toHaveCount(ids.length);
  // The page refreshes itself in place: its age starts over, in the same document.
  await mark(page);
  const freshness = page.locator(".freshness");
  await expect(freshness).toHaveText(/^Updated [1-9]\d* s ago/);
  await expect(freshness).toHaveText(/^Updated just now/);
  expect(await stillMarked(page)).toBe(true);

  // A second demo user, in a browser of their own, sees the same action.
  const bobContext = await browser.newContext();
  const bob = await bobContext.newPage();
  await bob.goto("/login");
  await bob.getByRole("button", { name: "Sign in as Bob Operator" }).click();
  await bob.waitForURL((url) => url.pathname === "/");
  await hydrated(bob);
  await bob.goto(`/actions/${action.id}`);
  await expect(bob.getByTestId("signed-in-as")).toHaveText("Bob Operator");
  await expect(bob.getByRole("heading", { level: 1 })).toHaveText("retrySagas on onboarding");
  await bobContext.close();

  expect(errors).toEqual([]);
});
