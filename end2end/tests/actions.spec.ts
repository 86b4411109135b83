import { readFileSync } from "node:fs";
import { test, expect, type Page } from "@playwright/test";

// The whole path of a corrective action with two demo users: Alice (signed in for every
// test, see global-setup.ts) asks to retry a whole error group and submits it; Bob approves;
// the demo fleet retries the sagas; the page and the Markdown record show all of it.

async function hydrated(page: Page) {
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
}

/** Alice's personal API token, as `runboard demo` wrote it: a script's way in. */
function aliceToken(): string {
  const users = JSON.parse(readFileSync("../target/e2e-data/demo-users.json", "utf8"));
  return users.find((u: { login: string }) => u.login === "alice").token;
}

async function lastUpdated(request: Page["request"], sagaId: string): Promise<string> {
  const found = await (
    await request.post("/api/v1/lookup", {
      data: { text: sagaId },
      headers: { Authorization: `Bearer ${aliceToken()}` },
    })
  ).json();
  const onboarding = found.services.find((s: { service: string }) => s.service === "onboarding");
  return onboarding.sagas[0].updated_at;
}

test("an operator asks to retry an error group, another approves, the fleet retries them, and the record shows it", async ({ page, browser }) => {
  test.setTimeout(90_000);
  await page.goto("/services/onboarding");
  await hydrated(page);
  const group = page.locator("table.groups tbody tr").last();
  const message = (await group.locator("th").textContent())!.trim();
  await group.getByRole("button", { name: /^Select all/ }).click();
  await page.getByRole("link", { name: "Ask for an action or run a runbook on them…" }).click();

  await expect(page).toHaveURL(/\/actions\/new\?/);
  await hydrated(page);
  // The selection stands in for the IDs: the server reads the group again at the preview.
  const picked = page.getByTestId("selection");
  await expect(picked).toContainText(`failed sagas with the error “${message}”`);
  const count = Number((await picked.textContent())!.match(/all (\d+) failed/)![1]);
  expect(count).toBeGreaterThan(0);
  await expect(page.locator("textarea[name=ids]")).toHaveCount(0);
  await expect(page.locator("select[name=mutation]")).toHaveValue("retrySagas");

  await page.getByRole("button", { name: "Preview" }).click();
  await expect(page).toHaveURL(/\/actions\/[0-9a-f-]{36}$/, { timeout: 20_000 });
  await hydrated(page);
  const actionUrl = page.url();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("retrySagas on onboarding");
  await expect(page.locator("[data-state=previewed]")).toBeVisible();
  // The exact request, the service's own dry run in sum, and entity by entity.
  await expect(page.locator("pre.document")).toContainText("retrySagas(ids: $ids, dryRun: $dryRun)");
  await expect(page.getByTestId("effect-groups").locator("tbody tr").first()).toContainText("retry");
  const rows = page.getByTestId("entities").locator("tbody tr");
  await expect(rows).toHaveCount(Math.min(count, 100));
  await expect(rows.first()).toContainText("retry");
  const ids = await rows.locator("th").allTextContents();
  const before = await lastUpdated(page.request, ids[0]);

  await page.getByLabel("Why is it needed?").fill("INC-77: KYC provider returned garbage");
  await page.getByRole("button", { name: "Submit for approval" }).click();
  await expect(page.getByText("Waiting for another approver: you cannot approve your own action.")).toBeVisible();
  await expect(page.getByRole("button", { name: "Approve" })).toHaveCount(0);

  // Bob, in his own browser.
  const bobContext = await browser.newContext({ storageState: { cookies: [], origins: [] } });
  const bob = await bobContext.newPage();
  await bob.goto("/login?next=/actions?view=awaiting_me");
  await bob.getByRole("button", { name: "Sign in as Bob Operator" }).click();
  await hydrated(bob);
  await bob.locator("table.actions tbody tr", { hasText: "retrySagas on onboarding" }).first().getByRole("link").click();
  await expect(bob).toHaveURL(actionUrl);
  await hydrated(bob);
  await bob.getByRole("button", { name: "Approve" }).click();
  await expect(bob.locator("[data-state=succeeded]")).toBeVisible({ timeout: 30_000 });
  await expect(bob.getByTestId("progress")).toContainText(`${count} succeeded, 0 failed, 0 pending`);
  await expect(bob.getByTestId("approvals")).toHaveText("1 of 1");
  await expect(bob.locator("table.audit tbody td:nth-child(4)")).toHaveText([
    "action.previewed",
    "action.submitted",
    "action.approved",
    "action.executing",
    "action.started",
    "action.rechecked",
    "action.succeeded",
  ]);

  // The fleet retried them: the saga moved on since.
  expect(await lastUpdated(page.request, ids[0])).not.toBe(before);

  // Alice's page follows along, and the record says it all.
  await expect(page.locator("[data-state=succeeded]")).toBeVisible({ timeout: 10_000 });
  const download = page.waitForEvent("download");
  await page.getByRole("link", { name: "Download the Markdown record" }).click();
  const record = await (await (await download).createReadStream()).toArray();
  const text = Buffer.concat(record).toString("utf8");
  expect(text).toContain("# retrySagas on onboarding");
  expect(text).toContain("INC-77: KYC provider returned garbage");
  expect(text).toContain("Bob Operator (demo:bob)");
  expect(text).toContain(`${count} succeeded, 0 failed, 0 pending.`);
  for (const id of ids.slice(0, 5)) expect(text).toContain(id);

  // The saga's own page lists the action that touched it.
  await page.goto(`/services/onboarding/sagas/${ids[0]}`);
  const touched = page.locator("ul.saga-actions li", { hasText: "retrySagas" }).first();
  await expect(touched).toContainText("Alice Operator");
  await expect(touched.getByRole("link")).toHaveAttribute("href", new URL(actionUrl).pathname);
  await bobContext.close();
});

test("a viewer sees actions but no control to act on them", async ({ browser }) => {
  const context = await browser.newContext({ storageState: { cookies: [], origins: [] } });
  const page = await context.newPage();
  await page.goto("/login?next=/actions");
  await page.getByRole("button", { name: "Sign in as Vera Viewer" }).click();
  await hydrated(page);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Actions");
  const response = await page.goto("/actions/new?service=onboarding");
  expect(response?.status()).toBe(403);
  await expect(page.getByText("this needs the operator role")).toBeVisible();
  await context.close();
});
