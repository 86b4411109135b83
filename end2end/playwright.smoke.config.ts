import { defineConfig } from "@playwright/test";
import { launchOptions } from "./browser";

// The smoke test of the README's first command: scripts/test starts `scripts/run-demo` on a
// free loopback port and points this at it (RUNBOARD_SMOKE_URL, RUNBOARD_SMOKE_DATA_DIR).
const baseURL = process.env.RUNBOARD_SMOKE_URL;
if (!baseURL) throw new Error("RUNBOARD_SMOKE_URL is not set: run this through scripts/test");

export default defineConfig({
  testDir: "./smoke",
  timeout: 90_000,
  expect: { timeout: 15_000 },
  forbidOnly: true,
  retries: 0,
  workers: 1,
  reporter: [["list"]],
  use: { baseURL, launchOptions, trace: "retain-on-failure" },
});
