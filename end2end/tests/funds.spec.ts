import { test, expect } from "@playwright/test";

// Funds against the demo fleet: payments holds money in several currencies.

test("withheld funds per currency are the API's, with a chart and the sagas behind them", async ({ page, request }) => {
  await expect(async () => {
    await page.goto("/funds");
    const api = await (await request.get("/api/v1/funds")).json();
    const totals = new Map<string, number>();
    for (const service of api.services) {
      for (const money of service.withheld_funds) {
        totals.set(money.currency, (totals.get(money.currency) ?? 0) + Math.round(Number(money.amount) * 100));
      }
    }
    expect(totals.size).toBeGreaterThan(0);
    for (const [currency, cents] of totals) {
      const shown = (cents / 100).toLocaleString("en-US", { minimumFractionDigits: 2 });
      await expect(page.getByRole("heading", { name: `${currency}: ${shown} withheld` })).toBeVisible({ timeout: 500 });
    }
  }).toPass({ timeout: 20_000 });
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");

  const chart = page.locator("section.currency figure.chart img").first();
  await expect(chart).toHaveAttribute("alt", /^Bar chart of withheld [A-Z]{3} per service: payments [\d,.]+ [A-Z]{3}\.$/);
  await expect.poll(() => chart.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(480);

  const behind = page.locator("section.behind", { hasText: "payments" });
  await expect(behind.locator("caption")).toHaveText(/^The \d+ largest of [\d,]+ sagas holding money$/);
  const amounts = await behind.locator("tbody td.num").allTextContents();
  expect(amounts.length).toBeGreaterThan(0);
  for (const amount of amounts) expect(amount).toMatch(/^[\d,]+\.\d{2} [A-Z]{3}$/);
});
