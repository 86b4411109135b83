import { readFileSync } from "node:fs";
import { test, expect, request as http } from "@playwright/test";
import { scaleBaseURL, scaleEntities } from "../playwright.config";

// The action page at fleet scale: an action on a whole error group of 100,000 sagas (its
// preview made through the API, as a script would), opened in the browser. The page shows
// totals, money, the effects grouped and the entities a page at a time, and answers in
// under a second however many entities the action has.

function token(login: string): string {
  const users = JSON.parse(readFileSync("../target/e2e-scale-data/demo-users.json", "utf8"));
  return users.find((u: { login: string }) => u.login === login).token;
}

test("the page of an action on 100,000 sagas answers in under a second", async ({ browser }) => {
  test.setTimeout(240_000);
  const api = await http.newContext({
    baseURL: scaleBaseURL,
    extraHTTPHeaders: { Authorization: `Bearer ${token("alice")}` },
    timeout: 180_000,
  });
  const groups = await (await api.get("/api/v1/services/onboarding/errors?live=true")).json();
  const group = groups.groups.reduce((a: { count: number }, b: { count: number }) => (a.count >= b.count ? a : b));
  expect(group.count).toBe(scaleEntities);
  const asked = Date.now();
  const created = await api.post("/api/v1/actions", {
    data: {
      service: "onboarding",
      mutation: "retrySagas",
      arguments: {},
      selection: { error_group: group.error_message },
    },
  });
  expect(created.status(), await created.text()).toBe(201);
  const action = await created.json();
  console.log(`preview of ${action.preview.entities} sagas made in ${((Date.now() - asked) / 1000).toFixed(1)} s`);
  expect(action.preview.entities).toBe(group.count);

  const context = await browser.newContext({ baseURL: scaleBaseURL, storageState: { cookies: [], origins: [] } });
  const page = await context.newPage();
  await page.goto("/login");
  await page.getByRole("button", { name: "Sign in as Alice Operator" }).click();
  await page.waitForURL((url) => url.pathname === "/");

  // Warm once (the first view of any page loads the wasm), then time three fresh views:
  // from asking for the page to its first 100 entities on screen. The middle one is what a
  // reader waits for; one slow view alone says more about a shared machine than the page.
  await page.goto(`/actions/${action.id}`);
  const rows = page.getByTestId("entities").locator("tbody tr");
  const views: number[] = [];
  for (let view = 0; view < 3; view++) {
    const started = Date.now();
    const response = await page.goto(`/actions/${action.id}`);
    await expect(rows).toHaveCount(100);
    views.push(Date.now() - started);
    expect(response?.status()).toBe(200);
  }
  const took = [...views].sort((a, b) => a - b)[1];
  console.log(`action page of ${group.count} entities answered and showed in ${views.join(", ")} ms (middle: ${took} ms)`);
  expect(took).toBeLessThan(1_000);

  await expect(page.getByRole("heading", { level: 1 })).toHaveText("retrySagas on onboarding");
  await expect(page.getByText(`The service's dry run of all ${group.count.toLocaleString("en-US")} entities`)).toBeVisible();
  await expect(page.getByTestId("effect-groups").locator("tbody tr").first()).toContainText("retry");
  await expect(rows.first().locator("td").first()).toHaveText("1");
  // The next page, by keyset: entities 101 to 200.
  await page.getByRole("link", { name: "Next entities →" }).click();
  await expect(rows.first().locator("td").first()).toHaveText("101");
  await context.close();
  await api.dispose();
});
