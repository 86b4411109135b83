import { test, expect } from "@playwright/test";

// Lookup against the demo fleet: IDs pasted from log lines are found in the right services.

test("pasted log lines are found in the right services, and unknown IDs are listed", async ({ page, request }) => {
  const firstSaga = async (service: string) =>
    (await (await request.get(`/api/v1/services/${service}/sagas?limit=1&sort=oldest`)).json()).sagas[0].saga_id as string;
  const payment = await firstSaga("payments");
  const signup = await firstSaga("onboarding");
  const unknown = "00000000-0000-4000-8000-00000000beef";

  await page.goto("/lookup");
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
  await page.getByLabel(/Paste log lines/).fill(
    [
      `2026-11-24T08:30:01Z ERROR [transfer ${payment.toUpperCase()}] timeout calling ledger-service`,
      `2026-11-24T08:30:02Z WARN  kyc saga=${signup} retrying`,
      `"${unknown}",12.30,EUR`,
    ].join("\n"),
  );
  await page.getByRole("button", { name: "Look up" }).click();

  await expect(page.getByText("2 of 3 IDs found")).toBeVisible();
  const payments = page.locator(".lookup-service", { has: page.getByRole("heading", { name: "payments" }) });
  await expect(payments.locator("table.lookup-sagas tbody th")).toHaveText([payment]);
  const onboarding = page.locator(".lookup-service", { has: page.getByRole("heading", { name: "onboarding" }) });
  await expect(onboarding.locator("table.lookup-sagas tbody th")).toHaveText([signup]);
  await expect(page.locator(".lookup-service", { has: page.getByRole("heading", { name: "payouts" }) })).toHaveCount(0);
  await expect(page.locator(".not-found li")).toHaveText([unknown]);
});

test("a paste without IDs says what an ID looks like", async ({ page }) => {
  await page.goto("/lookup");
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
  await page.getByLabel(/Paste log lines/).fill("nothing to see here");
  await page.getByRole("button", { name: "Look up" }).click();
  await expect(page.getByText(/No ID found in the text/)).toBeVisible();
});
