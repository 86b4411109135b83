import { test, expect, type Page } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

// Served by `runboard demo`: the demo fleet's three services, payments, payouts and
// onboarding, polled into snapshots while its load generator keeps them busy.

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

const rows = (page: Page) => page.locator("table.services tbody tr");

/** Reloads until the first poll has landed: a fresh demo serves before it finishes. */
async function polled(page: Page, path = "/") {
  await expect(async () => {
    await page.goto(path);
    await expect(page.getByText("Not polled yet")).toHaveCount(0, { timeout: 500 });
    await expect(rows(page).first().locator("time")).toHaveCount(1, { timeout: 500 });
  }).toPass({ timeout: 20_000 });
  await hydrated(page);
}

test("the overview loads, hydrates and logs no console errors", async ({ page }) => {
  const errors = watchConsole(page);
  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  await expect(page).toHaveTitle("Overview · Runboard");
  await hydrated(page);
  await expect(rows(page)).toHaveCount(3);
  await expect(rows(page).locator("th")).toHaveText(["onboarding", "payments", "payouts"]);
  await expect(page.getByRole("status").filter({ hasText: "services" })).toHaveText("3 services");
  expect(errors).toEqual([]);
});

test("the overview's numbers are the API's", async ({ page, request }) => {
  await polled(page);
  await expect(async () => {
    await page.reload();
    const api = await (await request.get("/api/v1/services")).json();
    for (const service of api.services) {
      const row = page.locator("table.services tbody tr", { has: page.getByRole("rowheader", { name: service.name }) });
      const cells = row.locator("td.num");
      const grouped = (n: number) => n.toLocaleString("en-US");
      await expect(cells.nth(0)).toHaveText(grouped(service.sagas.running), { timeout: 500 });
      await expect(cells.nth(1)).toHaveText(grouped(service.sagas.stuck), { timeout: 500 });
      await expect(cells.nth(2)).toHaveText(grouped(service.sagas.failed), { timeout: 500 });
      await expect(cells.nth(3)).toHaveText(grouped(service.failed_batches), { timeout: 500 });
    }
  }).toPass({ timeout: 20_000 });
  const payments = page.locator("table.services tbody tr", { has: page.getByRole("rowheader", { name: "payments" }) });
  await expect(payments.locator("ul.funds li").first()).toHaveText(/^[\d,]+\.\d+ [A-Z]{3}$/);
});

test("filtering is live after hydration: no reload, and the filter is in the URL", async ({ page }) => {
  const errors = watchConsole(page);
  await page.goto("/");
  await hydrated(page);
  // A full reload would wipe this marker; client-side filtering keeps it.
  await page.evaluate(() => ((window as any).__sameDocument = true));

  await page.getByLabel("Filter by service or team").fill("pay");
  const names = rows(page).locator("th");
  await expect(names).toHaveText(["payments", "payouts"]);
  await expect(page.getByText("2 of 3 services match")).toBeVisible();
  await expect(page).toHaveURL(/\?q=pay$/);
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);

  // The URL is shareable: opened fresh, the server renders the same filtered view.
  await page.goto("/?q=growth");
  await expect(names).toHaveText(["onboarding"]);
  await hydrated(page);
  await page.getByLabel("Filter by service or team").fill("");
  await expect(rows(page)).toHaveCount(3);
  await expect(page).toHaveURL(/\/$/);
  expect(errors).toEqual([]);
});

test.describe("in another time zone", () => {
  test.use({ timezoneId: "Asia/Tokyo" });

  test("times are shown in the reader's local time, with UTC on hover", async ({ page }) => {
    await polled(page);
    const updated = rows(page).first().locator("time");
    await expect(updated).toHaveAttribute("title", /UTC$/);
    const datetime = (await updated.getAttribute("datetime"))!;
    const local = await page.evaluate((d) => new Date(d).toLocaleString(), datetime);
    const inUtc = await page.evaluate((d) => new Date(d).toLocaleString(undefined, { timeZone: "UTC" }), datetime);
    expect(local).not.toEqual(inUtc);
    await expect(updated).toHaveText(local);
    await expect(rows(page).first().locator(".ago")).toHaveText(/^\d+ (s|min) ago$/);
  });
});

test("an unknown address shows a 404 page with a way back", async ({ page }) => {
  const response = await page.goto("/no/such/screen");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
  await hydrated(page);
  await page.getByRole("link", { name: "Go to the overview" }).click();
  await expect(rows(page)).toHaveCount(3);
});

test("the navigation links every screen and marks the current one", async ({ page }) => {
  await page.goto("/");
  const nav = page.getByRole("navigation", { name: "Screens" });
  // Alerts says how many fire, when any does.
  await expect(nav.getByRole("link")).toHaveText(["Overview", "Lookup", "Batches", "Funds", "Actions", /^Alerts( \d+ firing)?$/]);
  await expect(nav.getByRole("link", { name: "Overview" })).toHaveAttribute("aria-current", "page");
  await hydrated(page);
  await nav.getByRole("link", { name: "Actions" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Actions");
  await expect(nav.getByRole("link", { name: "Actions" })).toHaveAttribute("aria-current", "page");
});

for (const path of ["/", "/services/onboarding", "/services/payments?status=failed", "/batches", "/lookup", "/funds", "/actions", "/actions/new?service=payments", "/alerts", "/account", "/api", "/no/such/screen"]) {
  test(`no serious or critical accessibility violation on ${path}`, async ({ page }) => {
    await polled(page, "/");
    await page.goto(path);
    await hydrated(page);
    const results = await new AxeBuilder({ page }).analyze();
    const blocking = results.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
    expect(blocking).toEqual([]);
  });
}

test("each service has a 24-hour trend chart with a text alternative", async ({ page }) => {
  await polled(page);
  const charts = page.locator("section.trends img");
  await expect(charts).toHaveCount(3);
  for (const chart of await charts.all()) {
    await chart.scrollIntoViewIfNeeded();
    await expect(chart).toHaveAttribute("alt", /^Chart of \w+'s stuck and failed sagas over the last 24 hours; now \d+ stuck and \d+ failed\.$/);
    await expect.poll(() => chart.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(400);
  }
});

test("every screen hydrates and works under the Content-Security-Policy without a violation", async ({ page }) => {
  const errors = watchConsole(page);
  // The browser's own report of each blocked script, style or frame, in the page.
  await page.addInitScript(() => {
    (window as unknown as { violations: string[] }).violations = [];
    document.addEventListener("securitypolicyviolation", (event) =>
      (window as unknown as { violations: string[] }).violations.push(`${event.violatedDirective} ${event.blockedURI}`),
    );
  });
  const response = await page.goto("/batches");
  expect(response?.headers()["content-security-policy"]).toContain("frame-ancestors 'none'");
  await hydrated(page);
  // Live after hydration: a client-side navigation and a server function under the policy.
  await page.getByRole("navigation").getByRole("link", { name: "Funds" }).click();
  await expect(page).toHaveURL(/\/funds$/);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Withheld funds");
  await page.goto("/services/payments?status=failed");
  await hydrated(page);
  expect(await page.evaluate(() => (window as unknown as { violations: string[] }).violations)).toEqual([]);
  expect(errors).toEqual([]);
});

test("a page on another site cannot frame Runboard", async ({ page, baseURL }) => {
  const errors = watchConsole(page);
  // Another site on this machine, a real one: the browser lets a page reach a local server
  // only from another local address, and a page it cannot reach would prove nothing.
  const elsewhere = createServer((_, response) => {
    response.writeHead(200, { "content-type": "text/html" });
    response.end(`<!DOCTYPE html><title>Elsewhere</title><iframe id="runboard" src="${baseURL}/actions"></iframe>`);
  });
  await new Promise<void>((listening) => elsewhere.listen(0, "127.0.0.1", listening));
  const { port } = elsewhere.address() as AddressInfo;
  try {
    const framed = page.waitForResponse((response) => response.url() === `${baseURL}/actions`);
    await page.goto(`http://127.0.0.1:${port}/`);
    // Runboard answered the frame's request, and the browser refused to show it.
    expect((await framed).status()).toBe(200);
    await expect.poll(() => errors.some((e) => e.includes("frame-ancestors"))).toBe(true);
    await expect(page.frameLocator("#runboard").getByRole("navigation")).toHaveCount(0);
  } finally {
    elsewhere.close();
  }
});
