import { test, expect, type Page, type APIRequestContext } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";

// The batch screens against the demo fleet's payouts service: last week's finished
// payout (its numbers no longer move) and this week's, still running.

async function hydrated(page: Page) {
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
}

/** Counts a batch's items of one status by walking every page of the items API. */
async function countItems(request: APIRequestContext, batchId: string, status: string): Promise<number> {
  let count = 0;
  let after: string | null = null;
  do {
    const query: string = `status=${status}&limit=500` + (after ? `&after=${encodeURIComponent(after)}` : "");
    const page = await (await request.get(`/api/v1/services/payouts/batches/${batchId}/items?${query}`)).json();
    count += page.items.length;
    after = page.next;
  } while (after);
  return count;
}

const grouped = (n: number) => n.toLocaleString("en-US");

test("a finished batch's page counts exactly its items", async ({ page, request }) => {
  await page.goto("/batches");
  await hydrated(page);
  const finished = page.locator(".service-batches", { hasText: "payouts" }).locator(".batch-card", { hasText: "Finished" }).first();
  await finished.getByRole("link").click();
  await expect(page).toHaveURL(/\/services\/payouts\/batches\//);
  const batchId = decodeURIComponent(page.url().split("/batches/")[1]);

  const [done, failed, pending] = await Promise.all(
    ["done", "failed", "pending"].map((status) => countItems(request, batchId, status)),
  );
  expect(done + failed).toBeGreaterThan(1000);
  const figure = (label: string) => page.locator(".figures div", { has: page.locator("dt", { hasText: label }) }).locator("dd");
  await expect(figure("Done")).toContainText(grouped(done));
  await expect(figure("Failed")).toContainText(grouped(failed));
  await expect(figure("Waiting")).toContainText(grouped(pending));
  await expect(figure("All items")).toHaveText(grouped(done + failed + pending));
  await expect(page.locator(".outlook")).toContainText("Finished");

  // Failed items by error add up to the failed count.
  const counts = await page.locator("table.batch-errors tbody td.num").allTextContents();
  expect(counts.map((c) => Number(c.replace(/,/g, ""))).reduce((a, b) => a + b, 0)).toBe(failed);
});

test("a running batch shows its pace, an ETA and a chart with a text alternative", async ({ page, request }) => {
  const api = await (await request.get("/api/v1/services/payouts/batches")).json();
  const running = api.batches.find((b: { finished_at: string | null }) => b.finished_at === null);
  await page.goto(`/services/payouts/batches/${running.batch_id}`);
  await hydrated(page);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(running.name);
  await expect(page.locator(".outlook")).toHaveText(/items a minute; expected to be through in|no estimate/);
  const chart = page.locator("figure.chart img");
  await expect(chart).toHaveAttribute("alt", new RegExp(`^Chart of ${running.name} over time: \\d+ done and \\d+ failed of \\d+ items so far\\.$`));
  const svg = await request.get((await chart.getAttribute("src"))!);
  expect(svg.headers()["content-type"]).toBe("image/svg+xml");
  const text = await svg.text();
  expect(text).toContain("items finished over time");
  expect(text).toContain("time (UTC)");
  // The image really loaded and has its size.
  await expect.poll(() => chart.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(720);

  const results = await new AxeBuilder({ page }).analyze();
  const blocking = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id);
  expect(blocking).toEqual([]);
});

test("the batches list reads like a progress report", async ({ page }) => {
  await page.goto("/batches");
  await hydrated(page);
  const card = page.locator(".service-batches", { hasText: "payouts" }).locator(".batch-card").first();
  await expect(card.locator(".batch-numbers")).toHaveText(/^[\d,]+ of [\d,]+ done \(\d+ %\) · [\d,]+ failed · [\d,]+ waiting$/);
  await expect(card.locator(".bar")).toHaveAttribute("aria-label", /^\d+ % done, \d+ % failed, \d+ % waiting$/);
  await expect(page.locator(".service-batches", { hasText: "onboarding" })).toContainText("No batches.");
});

test("the screen says how fresh it is, and refreshes itself", async ({ page }) => {
  await page.goto("/batches");
  await hydrated(page);
  const freshness = page.locator(".freshness");
  await expect(freshness).toHaveText(/^Updated (just now|\d+ s ago) · refreshes every 15 s$/);
  await expect(freshness).toHaveText(/^Updated [2-9] s ago/, { timeout: 10_000 });
  // After the refresh interval the data is read again and the age starts over.
  await expect(freshness).toHaveText(/^Updated (just now|1 s ago)/, { timeout: 20_000 });
});
