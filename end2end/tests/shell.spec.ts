import { test, expect, type Page } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";

/** Collects what a user would see in the devtools console as errors. */
function watchConsole(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  return errors;
}

async function hydrated(page: Page) {
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
}

test("the overview loads, hydrates and logs no console errors", async ({ page }) => {
  const errors = watchConsole(page);
  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  await expect(page).toHaveTitle("Overview · Runboard");
  await hydrated(page);
  const rows = page.locator("table.services tbody tr");
  await expect(rows).toHaveCount(3);
  await expect(rows.first().locator("th")).toHaveText("ledger");
  await expect(page.getByRole("status").filter({ hasText: "services" })).toHaveText("3 services");
  expect(errors).toEqual([]);
});

test("filtering is live after hydration: no reload, and the filter is in the URL", async ({ page }) => {
  const errors = watchConsole(page);
  await page.goto("/");
  await hydrated(page);
  // A full reload would wipe this marker; client-side filtering keeps it.
  await page.evaluate(() => ((window as any).__sameDocument = true));

  await page.getByLabel("Filter by service or team").fill("core-bank");
  const rows = page.locator("table.services tbody tr th");
  await expect(rows).toHaveText(["ledger", "wallet"]);
  await expect(page.getByText("2 of 3 services match")).toBeVisible();
  await expect(page).toHaveURL(/\?q=core-bank$/);
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);

  // The URL is shareable: opened fresh, the server renders the same filtered view.
  await page.goto("/?q=pay");
  await expect(rows).toHaveText(["payouts"]);
  await hydrated(page);
  await page.getByLabel("Filter by service or team").fill("");
  await expect(rows).toHaveCount(3);
  await expect(page).toHaveURL(/\/$/);
  expect(errors).toEqual([]);
});

test.describe("in another time zone", () => {
  test.use({ timezoneId: "Asia/Tokyo" });

  test("times are shown in the reader's local time, with UTC on hover", async ({ page }) => {
    await page.goto("/");
    await hydrated(page);
    const registered = page.locator("table.services tbody tr").first().locator("time");
    await expect(registered).toHaveAttribute("title", /UTC$/);
    const utc = (await registered.getAttribute("title"))!;
    const datetime = (await registered.getAttribute("datetime"))!;
    const local = await page.evaluate((d) => new Date(d).toLocaleString(), datetime);
    const inUtc = await page.evaluate((d) => new Date(d).toLocaleString(undefined, { timeZone: "UTC" }), datetime);
    expect(local).not.toEqual(inUtc);
    await expect(registered).toHaveText(local);
    expect(utc).toContain(datetime.slice(0, 10));
  });
});

test("an unknown address shows a 404 page with a way back", async ({ page }) => {
  const response = await page.goto("/no/such/screen");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
  await hydrated(page);
  await page.getByRole("link", { name: "Go to the overview" }).click();
  await expect(page.locator("table.services tbody tr")).toHaveCount(3);
});

test("screens not built yet are marked as such, not linked", async ({ page }) => {
  await page.goto("/");
  const nav = page.getByRole("navigation", { name: "Screens" });
  await expect(nav.getByRole("link", { name: "Overview" })).toHaveAttribute("aria-current", "page");
  await expect(nav.getByText("Lookup")).toHaveAttribute("aria-disabled", "true");
  await expect(nav.getByRole("link", { name: "Lookup" })).toHaveCount(0);
});

for (const path of ["/", "/no/such/screen"]) {
  test(`no serious or critical accessibility violation on ${path}`, async ({ page }) => {
    await page.goto(path);
    await hydrated(page);
    const results = await new AxeBuilder({ page }).analyze();
    const blocking = results.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
    expect(blocking).toEqual([]);
  });
}
