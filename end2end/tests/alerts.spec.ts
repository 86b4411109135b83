import { test, expect } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";

// Alerts against the demo: it watches any money payments holds, so money-held alerts fire
// from the first poll. Alice, signed in, is an operator.

test("the navigation counts firing alerts, an alert opens its filtered page, and acknowledging takes it off the count", async ({ page }) => {
  const count = page.getByTestId("nav-alerts-firing");
  await expect(async () => {
    await page.goto("/alerts");
    await expect(count).toBeVisible({ timeout: 500 });
  }).toPass({ timeout: 30_000 });
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
  const firingBefore = Number((await count.textContent())!.replace(/\D/g, ""));
  expect(firingBefore).toBeGreaterThan(0);

  const results = await new AxeBuilder({ page }).analyze();
  const blocking = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id);
  expect(blocking).toEqual([]);

  // A money-held alert links to the service on the Funds page.
  const money = page.getByTestId("alerts-firing").getByTestId("alert").filter({ hasText: "Money held" }).first();
  await expect(money).toContainText(/Money held \([A-Z]{3}\) on payments: [\d.]+ [A-Z]{3} withheld/);
  await money.getByRole("link", { name: "Open the problem" }).click();
  await expect(page).toHaveURL(/\/funds#payments$/);
  await expect(page.locator("section#payments")).toBeVisible();

  // Acknowledged with a note, it moves to its group and off the count.
  await page.goto("/alerts");
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
  const first = page.getByTestId("alerts-firing").getByTestId("alert").first();
  const summary = (await first.locator("p").first().textContent())!;
  await first.getByLabel("What you are doing (optional)").fill("moving the funds by hand");
  await first.getByRole("button", { name: "Acknowledge" }).click();
  const acknowledged = page.getByTestId("alerts-acknowledged").getByTestId("alert").filter({ hasText: summary.split(":")[0] });
  await expect(acknowledged.first()).toContainText("acknowledged by Alice");
  await expect(acknowledged.first()).toContainText("moving the funds by hand");
  // Off the firing list, and the navigation counts what that list shows: other alerts may
  // fire meanwhile (the demo's load and the other tests), so no count is assumed.
  const firing = page.getByTestId("alerts-firing").getByTestId("alert");
  await expect(async () => {
    await page.reload();
    await expect(firing.filter({ hasText: summary })).toHaveCount(0, { timeout: 500 });
    const shown = await firing.count();
    if (shown > 0) await expect(count).toHaveText(new RegExp(`^\\s*${shown}\\s*firing$`), { timeout: 500 });
    else await expect(count).toHaveCount(0, { timeout: 500 });
  }).toPass({ timeout: 20_000 });
});

test("each open alert shows on its service's overview row, linking to its problem, and on the service's page", async ({ page }) => {
  const payments = page.locator("tr", { has: page.getByRole("link", { name: "payments", exact: true }) });
  const badge = payments.getByTestId("row-alert").filter({ hasText: "Money held" }).first();
  await expect(async () => {
    await page.goto("/");
    await expect(badge).toBeVisible({ timeout: 500 });
  }).toPass({ timeout: 30_000 });
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
  await expect(badge).toHaveAttribute("title", /withheld by failed and stuck sagas/);
  await badge.click();
  await expect(page).toHaveURL(/\/funds#payments$/);

  await page.goto("/services/payments");
  const panel = page.getByTestId("service-alerts");
  await expect(panel.getByRole("heading", { name: "Alerts" })).toBeVisible();
  await expect(panel).toContainText(/Money held.*withheld by failed and stuck sagas/);
  await expect(panel.getByRole("link", { name: "Acknowledge or silence on the Alerts screen" }).first()).toHaveAttribute("href", "/alerts");
});
