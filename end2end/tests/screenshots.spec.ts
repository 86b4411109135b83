import { readFileSync } from "node:fs";
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
  // The top bar names the person once the live page has asked who it is.
  await expect(page.getByTestId("signed-in-as")).toBeVisible();
}

const screens: [string, string | (() => Promise<string>)][] = [
  ["overview", "/"],
  ["service", "/services/onboarding"],
  ["service-failed-group", "/services/payments?status=failed"],
  ["batches", "/batches"],
  ["funds", "/funds"],
  ["alerts", "/alerts"],
];

test("screenshot: lookup", async ({ page, request }) => {
  const sagas = (await (await request.get("/api/v1/services/payments/sagas?status=failed&limit=3")).json()).sagas;
  await page.setViewportSize({ width: 1280, height: 900 });
  await ready(page, "/lookup");
  const lines = sagas.map((s: { saga_id: string }, i: number) => `2026-11-24T08:3${i}:00Z ERROR transfer ${s.saga_id} failed`);
  await page.getByLabel(/Paste log lines/).fill([...lines, "unknown 00000000-0000-4000-8000-00000000beef"].join("\n"));
  await page.getByRole("button", { name: "Look up" }).click();
  await expect(page.getByText(/of 4 IDs found/)).toBeVisible();
  await page.screenshot({ path: "../docs/screenshots/lookup.png" });
});

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

test("screenshot: saga", async ({ page, request }) => {
  const api = await (await request.get("/api/v1/services/payments/sagas?status=failed&sort=oldest&limit=1")).json();
  await page.setViewportSize({ width: 1280, height: 900 });
  await ready(page, `/services/payments/sagas/${api.sagas[0].saga_id}`);
  await page.screenshot({ path: "../docs/screenshots/saga.png" });
});

test("screenshot: batch on a phone", async ({ page, request }) => {
  const api = await (await request.get("/api/v1/services/payouts/batches")).json();
  await page.setViewportSize({ width: 390, height: 844 });
  await ready(page, `/services/payouts/batches/${api.batches[0].batch_id}`);
  await page.screenshot({ path: "../docs/screenshots/batch-phone.png" });
});

test("screenshot: sign-in", async ({ browser }) => {
  const context = await browser.newContext({ storageState: { cookies: [], origins: [] }, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto("/login");
  await page.screenshot({ path: "../docs/screenshots/sign-in.png" });
  await context.close();
});

/** Alice's personal API token from the demo's demo-users.json: how a script gets in. */
function aliceToken(): string {
  const users = JSON.parse(readFileSync("../target/e2e-data/demo-users.json", "utf8"));
  return users.find((u: { login: string }) => u.login === "alice").token;
}

test("screenshots: a new action, its page awaiting approval, and the list", async ({ page, request }) => {
  const auth = { Authorization: `Bearer ${aliceToken()}` };
  const groups = (await (await request.get("/api/v1/services/payments/errors", { headers: auth })).json()).groups;
  const group = groups[0].error_message as string;
  await page.setViewportSize({ width: 1280, height: 1000 });
  await ready(page, `/actions/new?service=payments&error=${encodeURIComponent(group)}`);
  await expect(page.locator("select[name=mutation]")).toHaveValue("retrySagas");
  await page.screenshot({ path: "../docs/screenshots/new-action.png" });

  const sagas = (await (await request.get(`/api/v1/services/payments/sagas?status=failed&error=${encodeURIComponent(group)}&limit=5`, { headers: auth })).json()).sagas;
  const created = await (await request.post("/api/v1/actions", {
    headers: auth,
    data: { service: "payments", mutation: "retrySagas", arguments: { ids: sagas.map((s: { saga_id: string }) => s.saga_id) } },
  })).json();
  await request.post(`/api/v1/actions/${created.id}/submit`, { headers: auth, data: { reason: "INC-2024: ledger lock timeouts after the 02:00 deploy" } });
  await page.setViewportSize({ width: 1280, height: 1400 });
  await ready(page, `/actions/${created.id}`);
  await expect(page.locator("[data-state=awaiting_approval]")).toBeVisible();
  await page.screenshot({ path: "../docs/screenshots/action.png" });
  await page.setViewportSize({ width: 1280, height: 700 });
  await ready(page, "/actions?view=mine");
  await page.screenshot({ path: "../docs/screenshots/actions.png" });
});
