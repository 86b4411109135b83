import { test, expect } from "@playwright/test";

// The API reference: from the Account page, where tokens are made, to every route with who
// may call it and what it answers, as the OpenAPI document the server serves says.

test("the API reference lists every route of the document, who may call it, and its schemas", async ({ page, request }) => {
  const document = await (await request.get("/api/v1/openapi.json")).json();
  const routes = Object.entries(document.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
    Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
  );
  expect(routes.length).toBeGreaterThan(30);

  await page.goto("/account");
  await expect(page.locator("main#main")).toHaveAttribute("data-hydrated", "true");
  await page.getByRole("link", { name: "API reference" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("API reference");

  const shown = page.getByTestId("api-operations").locator("tbody th[scope=row]");
  await expect(shown).toHaveCount(routes.length);
  expect((await shown.allTextContents()).sort()).toEqual([...routes].sort());

  const approve = page.getByTestId("api-operations").locator("tr", { hasText: "POST /api/v1/actions/{id}/approve" });
  await expect(approve).toContainText("a person with the approver role");
  await expect(approve).toContainText("body: ApprovalRequest");
  await approve.getByRole("link", { name: "Action", exact: true }).click();
  await expect(page).toHaveURL(/#schema-Action$/);
  const schema = page.locator("details#schema-Action");
  await schema.locator("summary").click();
  await expect(schema.locator("pre")).toContainText('"digest"');
});
