import { chromium, type FullConfig } from "@playwright/test";

// Signs in once as the demo operator Alice through the demo login page, and keeps her
// session for every test that does not sign in itself (see `storageState` in the config).
export const signedInAsAlice = "../target/e2e-auth/alice.json";

export default async function globalSetup(config: FullConfig) {
  const { baseURL, launchOptions } = config.projects[0].use;
  const browser = await chromium.launch(launchOptions);
  const page = await browser.newPage({ baseURL });
  await page.goto("/login");
  await page.getByRole("button", { name: "Sign in as Alice Operator" }).click();
  await page.waitForURL((url) => url.pathname === "/");
  await page.context().storageState({ path: signedInAsAlice });
  await browser.close();
}
