import { test, expect, type Page } from "@playwright/test";
import { parse } from "csv-parse/sync";

// What business users send on: a batch's failed items and the withheld funds, downloaded
// from the screens as CSV and held against what the screens show.

async function hydrated(page: Page) {
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
}

/** Clicks a "Download CSV" link and parses the file it saves, one object per row by header. */
async function downloadCsv(page: Page, label: RegExp): Promise<{ name: string; rows: Record<string, string>[] }> {
  const download = page.waitForEvent("download");
  await page.getByRole("link", { name: label }).click();
  const file = await download;
  const text = Buffer.concat(await (await file.createReadStream()).toArray()).toString("utf8");
  return { name: file.suggestedFilename(), rows: parse(text, { columns: true, skip_empty_lines: true }) };
}

const number = (text: string) => Number(text.replace(/,/g, ""));

test("a batch's failed items download whole, as the screen counts and shows them", async ({ page, request }) => {
  const batches = (await (await request.get("/api/v1/services/payouts/batches")).json()).batches;
  const finished = batches.find((b: { finished_at: string | null; failed: number }) => b.finished_at && b.failed > 0);
  expect(finished, "the demo fleet's payouts has a finished batch with failed items").toBeTruthy();
  await page.goto(`/services/payouts/batches/${encodeURIComponent(finished.batch_id)}`);
  await hydrated(page);

  const { name, rows } = await downloadCsv(page, /^Download every failed item as CSV$/);
  expect(name).toMatch(/^payouts-.*\.csv$/);
  // Every failed item, not the first few on screen.
  const failed = page.locator(".figures div", { has: page.locator("dt", { hasText: "Failed" }) }).locator("dd");
  const shownFailed = number((await failed.textContent())!.trim().split(/\s/)[0]);
  expect(rows.length).toBe(shownFailed);
  expect(new Set(rows.map((r) => r.status))).toEqual(new Set(["failed"]));

  // The items on screen are in the file with the same error.
  const byId = new Map(rows.map((r) => [r.item_id, r]));
  const onScreen = page.locator("table.failed-items tbody tr");
  expect(await onScreen.count()).toBeGreaterThan(0);
  for (const row of await onScreen.all()) {
    const id = (await row.locator("th").textContent())!.trim();
    expect(byId.get(id)?.error, `item ${id} in the file`).toBe((await row.locator("td.error-message").textContent())!.trim());
  }
  // The errors table's counts are the file's, error by error.
  const perError = new Map<string, number>();
  for (const r of rows) perError.set(r.error, (perError.get(r.error) ?? 0) + 1);
  for (const row of await page.locator("table.batch-errors tbody tr").all()) {
    const error = (await row.locator("th").textContent())!.trim();
    expect(perError.get(error), `items failed with ${error}`).toBe(number((await row.locator("td.num").textContent())!));
  }
});

test("the withheld funds download as the Funds page shows them, to the cent", async ({ page }) => {
  // The demo fleet keeps failing sagas, so a poll between the page and the download may
  // move the numbers: the two are compared again until one pair was taken between polls.
  await expect(async () => {
    await page.goto("/funds");
    await expect(page.locator("section.currency").first()).toBeVisible({ timeout: 500 });
    await hydrated(page);
    const { rows } = await downloadCsv(page, /^Download withheld funds per service and currency as CSV$/);
    expect(rows.length).toBeGreaterThan(0);
    const inFile = new Map(rows.map((r) => [`${r.service} ${r.currency}`, r.amount]));
    let compared = 0;
    for (const section of await page.locator("section.currency").all()) {
      const currency = (await section.locator("h2").textContent())!.split(":")[0];
      for (const row of await section.locator("tbody tr").all()) {
        const service = (await row.locator("th").textContent())!.trim();
        const shown = (await row.locator("td.num").textContent())!.replace(/,/g, "");
        // Exact decimal text, the currency in its own column.
        expect(inFile.get(`${service} ${currency}`), `${service} in ${currency}`).toBe(shown);
        compared += 1;
      }
    }
    expect(compared).toBe(rows.length);
  }).toPass({ timeout: 45_000 });
});
