import { readFileSync } from "node:fs";
import { test, expect, type Page, type APIRequestContext } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";

// The seed case of #17 with two demo users: payments transfers failed at post_to_ledger while
// holding their money. Alice starts the saved runbook "Transfer the held funds and
// force-complete" on their error group, reads each transfer's story and submits; Bob
// approves once; every transfer is booked before its saga's completion, with the amount and
// accounts the story said, and the record tells it.

const RUNBOOK = "Transfer the held funds and force-complete";

async function hydrated(page: Page) {
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
}

/** Alice's personal API token, as `runboard demo` wrote it: a script's way in. */
function aliceToken(): string {
  const users = JSON.parse(readFileSync("../target/e2e-data/demo-users.json", "utf8"));
  return users.find((u: { login: string }) => u.login === "alice").token;
}

/** payments' mission control, as `runboard demo` wrote it down for scripts. */
function paymentsGraphql(): string {
  const fleet = JSON.parse(readFileSync("../target/e2e-data/demo-fleet.json", "utf8"));
  return fleet.find((s: { name: string }) => s.name === "payments").graphql_url;
}

async function payments(request: APIRequestContext, query: string, variables: object = {}) {
  const answer = await (await request.post(paymentsGraphql(), { data: { query, variables } })).json();
  expect(answer.errors, JSON.stringify(answer.errors)).toBeUndefined();
  return answer.data;
}

async function axeClean(page: Page) {
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  // The rule and the elements it found, so that a failure says where to look.
  expect(serious.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)).toEqual([]);
}

test("a saved runbook moves each held transfer's money and then completes it, approved once", async ({ page, browser, request }) => {
  test.setTimeout(120_000);
  // Transfers the ledger refused, each holding its money, under an error of their own.
  const error = `ledger-service rejected posting: account frozen (e2e ${Date.now()})`;
  const injected = await payments(
    request,
    `mutation($m: String!) { injectError(message: $m, count: 3, atStep: "post_to_ledger") }`,
    { m: error },
  );
  const sagas: string[] = injected.injectError;
  expect(sagas).toHaveLength(3);

  // The error group, from the service's screen (the poller reads it within a few seconds).
  await expect(async () => {
    await page.goto("/services/payments");
    await hydrated(page);
    await expect(page.locator("table.groups tbody tr", { hasText: error })).toHaveCount(1, { timeout: 1_000 });
  }).toPass({ timeout: 30_000 });
  await page.locator("table.groups tbody tr", { hasText: error }).getByRole("button", { name: /^Select all/ }).click();
  await page.getByRole("link", { name: "Ask for an action or run a runbook on them…" }).click();
  await expect(page).toHaveURL(/\/actions\/new\?/);
  await hydrated(page);

  const start = page.locator("section.runbook-start");
  await expect(start.locator("select[name=runbook] option:checked")).toHaveText(RUNBOOK);
  await expect(start.getByTestId("runbook-steps").locator("li strong")).toHaveText(["Transfer the held funds", "Force-complete the saga"]);
  await axeClean(page);
  await start.getByLabel("reason (the runbook's parameter)").fill("INC-17: ledger froze the accounts; booked by hand");
  await start.getByRole("button", { name: "Preview the runbook" }).click();
  await expect(page).toHaveURL(/\/actions\/[0-9a-f-]{36}$/, { timeout: 30_000 });
  await hydrated(page);
  const actionUrl = page.url();
  const id = actionUrl.split("/").pop()!;
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(`${RUNBOOK} on payments`);
  await expect(page.getByTestId("runbook-steps").locator("tbody tr")).toHaveCount(2);

  // Each transfer's story: what it holds, the transfer of exactly that, then its completion.
  const stories = page.getByTestId("stories").locator("article.story");
  await expect(stories).toHaveCount(3);
  const held = new Map<string, { amount: string; currency: string; from: string; to: string }>();
  for (const saga of sagas) {
    const story = page.locator(`article.story[data-entity="${saga}"]`);
    const found = (await story.locator("p.error-message").textContent())!;
    const [, amount, currency] = found.match(/holds ([\d,.]+) ([A-Z]{3})/)!;
    const transfer = story.locator("li[data-step='1']");
    await expect(transfer).toContainText("Transfer the held funds");
    await expect(transfer).toHaveAttribute("data-step-state", "pending");
    const call = JSON.parse((await transfer.locator("pre").textContent())!);
    expect(call.reference).toBe(`RB-${saga}`);
    expect(call.currency).toBe(currency);
    expect(Number(call.amount)).toBe(Number(amount.replaceAll(",", "")));
    held.set(saga, { amount: call.amount, currency, from: call.fromAccount, to: call.toAccount });
    await expect(story.locator("li[data-step='2']")).toContainText(/Would: .*releases/);
  }
  await axeClean(page);

  await page.getByLabel("Why is it needed?").fill("INC-17: the ledger froze the accounts");
  await page.getByRole("button", { name: "Submit for approval" }).click();
  await expect(page.getByText("Waiting for another approver: you cannot approve your own action.")).toBeVisible();

  // Bob approves once, for the whole runbook.
  const bobContext = await browser.newContext({ storageState: { cookies: [], origins: [] } });
  const bob = await bobContext.newPage();
  await bob.goto(`/login?next=/actions/${id}`);
  await bob.getByRole("button", { name: "Sign in as Bob Operator" }).click();
  await expect(bob).toHaveURL(actionUrl);
  await hydrated(bob);
  await bob.getByRole("button", { name: "Approve" }).click();
  await expect(bob.locator("p.action-state [data-state=succeeded]")).toBeVisible({ timeout: 60_000 });
  await expect(bob.getByTestId("progress")).toContainText("3 succeeded, 0 failed, 0 pending");
  await expect(bob.getByTestId("approvals")).toHaveText("1 of 1");
  for (const saga of sagas) {
    const story = bob.locator(`article.story[data-entity="${saga}"]`);
    await expect(story.locator("li[data-step='1']")).toHaveAttribute("data-step-state", "succeeded");
    await expect(story.locator("li[data-step='2']")).toHaveAttribute("data-step-state", "succeeded");
  }
  await bobContext.close();

  // The service's own log: each transfer before its saga's completion, each applied once.
  const log = (await payments(request, "{ callLog(limit: 1000000) { idempotencyKey mutation variables dryRun applied action } }")).callLog
    .filter((c: { action: string; dryRun: boolean }) => c.action === id && !c.dryRun);
  for (const saga of sagas) {
    const transfer = log.findIndex((c: { mutation: string; variables: { reference?: string } }) => c.mutation === "transferFunds" && c.variables.reference === `RB-${saga}`);
    const completion = log.findIndex((c: { mutation: string; variables: { ids?: string[] } }) => c.mutation === "forceCompleteSagas" && c.variables.ids?.[0] === saga);
    expect(transfer, `${saga}'s transfer`).toBeGreaterThanOrEqual(0);
    expect(completion, `${saga}'s completion after its transfer`).toBeGreaterThan(transfer);
    expect(log[transfer].applied && log[completion].applied).toBe(true);
    // The money went where the story said.
    const booked = (await payments(request, `query($r: String!) { transfer(reference: $r) { fromAccount toAccount amount currency } }`, { r: `RB-${saga}` })).transfer;
    const said = held.get(saga)!;
    expect([booked.fromAccount, booked.toAccount, booked.amount, booked.currency]).toEqual([said.from, said.to, said.amount, said.currency]);
  }
  // And the sagas are complete, holding nothing any more.
  for (const saga of sagas) {
    const found = await (
      await request.post("/api/v1/lookup", { data: { text: saga }, headers: { Authorization: `Bearer ${aliceToken()}` } })
    ).json();
    const row = found.services.find((s: { service: string }) => s.service === "payments").sagas[0];
    expect(row.status).toBe("completed");
  }

  // The record tells every step for every entity.
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(actionUrl);
  await hydrated(page);
  await page.getByRole("heading", { name: "Progress" }).scrollIntoViewIfNeeded();
  // The README's picture of a runbook, retaken only by scripts/screenshots.
  if (process.env.RUNBOARD_SCREENSHOTS) await page.screenshot({ path: "../docs/screenshots/runbook.png" });
  const download = page.waitForEvent("download");
  await page.getByRole("link", { name: "Download the Markdown record" }).click();
  const text = Buffer.concat(await (await (await download).createReadStream()).toArray()).toString("utf8");
  expect(text).toContain(`# ${RUNBOOK} on payments`);
  expect(text).toContain("| 1 | Transfer the held funds | `transferFunds` |");
  for (const saga of sagas) {
    expect(text).toContain(`### \`${saga}\`: every step done`);
  }
  expect(text.match(/\| 1\. Transfer the held funds \| .* \| succeeded \|/g)).toHaveLength(3);
  expect(text.match(/\| 2\. Force-complete the saga \| .* \| succeeded \|/g)).toHaveLength(3);
});
