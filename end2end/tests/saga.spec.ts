import { test, expect } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";

// The saga screen: its supervisor row as the API reports it, payments' facts about the
// transfer, and its transfer events as history.

test("a saga shows its row, its facts and its history", async ({ page, request }) => {
  const api = await (await request.get("/api/v1/services/payments/sagas?status=failed&sort=oldest&limit=1")).json();
  const saga = api.sagas[0];
  await page.goto(`/services/payments?status=failed&sort=oldest`);
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
  await page.getByRole("link", { name: saga.saga_id }).click();
  await expect(page).toHaveURL(new RegExp(`/services/payments/sagas/${saga.saga_id}$`));

  await expect(page.getByRole("heading", { level: 1 })).toHaveText(saga.saga_id);
  const field = (label: string) => page.locator(".saga-row div", { has: page.locator("dt", { hasText: label }) }).locator("dd");
  await expect(field("Status")).toHaveText("✕ failed");
  await expect(field("Type")).toHaveText(saga.saga_type);
  await expect(field("Current step")).toHaveText(saga.current_step);
  await expect(field("Error")).toHaveText(saga.error_message);
  // What payments keeps about the transfer: its accounts and its reference.
  await expect(page.locator(".saga-facts dt")).toHaveText(["from_account", "reference", "to_account"]);
  const fact = (name: string) => page.locator(".saga-facts div", { has: page.locator("dt", { hasText: name }) }).locator("dd");
  await expect(fact("from_account")).toHaveText(/^acct-\d{5}$/);
  await expect(fact("to_account")).toHaveText(/^acct-\d{5}$/);
  await expect(fact("reference")).toHaveText(`TRF-${saga.saga_id.slice(0, 8)}`);
  const history = page.locator("ol.history li");
  await expect(history.first()).toContainText("initiated");
  await expect(history.last()).toContainText("failed");

  const results = await new AxeBuilder({ page }).analyze();
  const blocking = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id);
  expect(blocking).toEqual([]);
});

test("a service without history says so plainly", async ({ page, request }) => {
  const api = await (await request.get("/api/v1/services/onboarding/sagas?limit=1&sort=oldest")).json();
  await page.goto(`/services/onboarding/sagas/${api.sagas[0].saga_id}`);
  await expect(page.getByText(/keeps no history Runboard can read/)).toBeVisible();
  await expect(page.getByRole("heading", { name: "Facts" }), "no facts query: no Facts section").toHaveCount(0);
});
