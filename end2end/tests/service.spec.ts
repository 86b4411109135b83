import { test, expect, type Page } from "@playwright/test";

// The service screen against the demo fleet: onboarding's failed sagas grouped by error,
// drill-down into a group, filters and pages in the URL, and hostile text shown as text.

const HOSTILE = 'validation failed: display name "<img src=x onerror=alert(1)>" contains markup';

async function hydrated(page: Page) {
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
}

test("from the overview to a service's error groups", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  await page.getByRole("link", { name: "onboarding", exact: true }).click();
  await expect(page).toHaveURL(/\/services\/onboarding$/);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("onboarding");
  const groups = page.locator("table.groups tbody tr");
  await expect(groups.first()).toBeVisible();
  expect(await groups.count()).toBeGreaterThan(1);
});

test("an error group's drill-down lists exactly that group's sagas", async ({ page, request }) => {
  await page.goto("/services/onboarding");
  await hydrated(page);
  const group = page.locator("table.groups tbody tr").first();
  const message = (await group.locator("th").textContent())!;
  await group.getByRole("link", { name: "Show sagas" }).click();
  await expect(page).toHaveURL(/status=failed&error=/);
  await page.getByLabel("Order").selectOption("oldest");
  await page.getByRole("button", { name: "Apply" }).click();
  await expect(page).toHaveURL(/sort=oldest/);

  // The screen shows what was read for everyone within the poll interval, and the demo's
  // load keeps failing sagas meanwhile: compare a read now ("Read live now") with the API's.
  const drillDown = page.url();
  await expect(async () => {
    await page.goto(`${drillDown}&live=${Date.now()}`);
    const api = await (
      await request.get(`/api/v1/services/onboarding/sagas?status=failed&sort=oldest&error=${encodeURIComponent(message)}`)
    ).json();
    const shown = await page.locator("table.sagas tbody th").allTextContents();
    expect(shown).toEqual(api.sagas.map((s: { saga_id: string }) => s.saga_id));
  }).toPass({ timeout: 20_000 });
  const errors = await page.locator("table.sagas tbody td.error-message").allTextContents();
  expect(new Set(errors)).toEqual(new Set([message]));
  await expect(page.locator("table.sagas .status").first()).toHaveText("✕ failed");
});

test("selecting a whole error group is one click and counts the whole group", async ({ page }) => {
  await page.goto("/services/onboarding");
  await hydrated(page);
  const group = page.locator("table.groups tbody tr").first();
  const count = (await group.locator("td.num").textContent())!;
  await group.getByRole("button", { name: /^Select all/ }).click();
  await expect(page.locator(".selection")).toContainText(`Selected: all ${count} failed sagas`);
  await page.getByRole("button", { name: "Clear selection" }).click();
  await expect(page.locator(".selection")).toHaveCount(0);
});

test("an error message full of markup is shown as text and never runs", async ({ page }) => {
  let dialogs = 0;
  page.on("dialog", async (dialog) => {
    dialogs += 1;
    await dialog.dismiss();
  });
  await page.goto(`/services/onboarding?status=failed&error=${encodeURIComponent(HOSTILE)}`);
  await hydrated(page);
  await expect(page.locator("table.groups th", { hasText: HOSTILE })).toHaveText(HOSTILE);
  await expect(page.locator("table.sagas td.error-message").first()).toHaveText(HOSTILE);
  await expect(page.locator('img[src="x"]')).toHaveCount(0);
  expect(dialogs).toBe(0);
});

test("filters and pages live in the URL", async ({ page }) => {
  await page.goto("/services/payments");
  await hydrated(page);
  // Oldest first: sagas completing meanwhile join at the far end, so the pages hold still.
  await page.getByLabel("Status").selectOption("completed");
  await page.getByLabel("Order").selectOption("oldest");
  await page.getByRole("button", { name: "Apply" }).click();
  await expect(page).toHaveURL(/status=completed.*sort=oldest/);
  const statuses = page.locator("table.sagas tbody .status");
  await expect(statuses.first()).toHaveText("✓ completed");
  expect(new Set(await statuses.allTextContents())).toEqual(new Set(["✓ completed"]));

  const firstPage = await page.locator("table.sagas tbody th").allTextContents();
  expect(firstPage).toHaveLength(50);
  await page.getByRole("link", { name: "Next page" }).click();
  await expect(page).toHaveURL(/after=/);
  await expect(page.locator("table.sagas tbody th").first()).not.toHaveText(firstPage[0]);
  const secondPage = await page.locator("table.sagas tbody th").allTextContents();
  expect(secondPage.filter((id) => firstPage.includes(id))).toEqual([]);

  // Pasted into a new tab, the link shows the same page.
  const url = page.url();
  const other = await page.context().newPage();
  await other.goto(url);
  await expect(other.locator("table.sagas tbody th")).toHaveText(secondPage);
  await page.getByRole("link", { name: "First page" }).click();
  await expect(page.locator("table.sagas tbody th").first()).toHaveText(firstPage[0]);
});

test("a service that is not registered says so", async ({ page }) => {
  await page.goto("/services/nonesuch");
  await expect(page.getByText('no service is registered as "nonesuch"')).toHaveCount(2);
});

test("navigating to a service in the browser reads its sagas without a server error", async ({ page }) => {
  const failures: string[] = [];
  page.on("response", (r) => {
    if (r.status() >= 500) failures.push(`${r.status()} ${r.url()}`);
  });
  await page.goto("/");
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
  await page.getByRole("link", { name: "onboarding", exact: true }).click();
  await expect(page.locator("table.sagas tbody tr").first()).toBeVisible();
  await page.getByLabel("Status").selectOption("failed");
  await page.getByRole("button", { name: "Apply" }).click();
  await expect(page.locator("table.sagas tbody .status").first()).toHaveText("✕ failed");
  expect(failures).toEqual([]);
});
