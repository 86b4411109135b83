import { test, expect, type Page } from "@playwright/test";

// Screenshots of every screen, at desk width and at phone width, kept in docs/screenshots
// and shown in the README. Each waits until the screen shows real numbers.

async function ready(page: Page, path: string) {
  await expect(async () => {
    await page.goto(path);
    await expect(page.getByText("Not polled yet")).toHaveCount(0, { timeout: 500 });
  }).toPass({ timeout: 20_000 });
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator(".loading")).toHaveCount(0);
}

const screens: [string, string | (() => Promise<string>)][] = [
  ["overview", "/"],
  ["service", "/services/onboarding"],
  ["service-failed-group", "/services/payments?status=failed"],
  ["batches", "/batches"],
];

for (const [name, path] of screens) {
  test(`screenshot: ${name}`, async ({ page }) => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await ready(page, path as string);
    await page.screenshot({ path: `../docs/screenshots/${name}.png`, fullPage: false });
  });
}

test("screenshot: batch", async ({ page, request }) => {
  const api = await (await request.get("/api/v1/services/payouts/batches")).json();
  const running = api.batches.find((b: { finished_at: string | null }) => b.finished_at === null) ?? api.batches[0];
  await page.setViewportSize({ width: 1280, height: 1100 });
  await ready(page, `/services/payouts/batches/${running.batch_id}`);
  await expect(page.locator("figure.chart img")).toHaveJSProperty("complete", true);
  await page.screenshot({ path: "../docs/screenshots/batch.png" });
});

test("screenshot: batch on a phone", async ({ page, request }) => {
  const api = await (await request.get("/api/v1/services/payouts/batches")).json();
  await page.setViewportSize({ width: 390, height: 844 });
  await ready(page, `/services/payouts/batches/${api.batches[0].batch_id}`);
  await page.screenshot({ path: "../docs/screenshots/batch-phone.png" });
});
