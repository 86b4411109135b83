import { defineConfig } from "@playwright/test";

// The server under test is the real runboard binary built by `cargo leptos build`,
// run as `runboard demo`: a fresh SQLite store and the demo fleet with its load generator.
const port = Number(process.env.RUNBOARD_E2E_PORT ?? 3417);
const baseURL = `http://127.0.0.1:${port}`;

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  forbidOnly: true,
  retries: 0,
  workers: 2,
  reporter: [["list"]],
  use: {
    baseURL,
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  webServer: {
    command: `rm -rf ../target/e2e-data && exec ../target/debug/runboard demo --listen 127.0.0.1:${port} --data-dir ../target/e2e-data --site-root ../target/site`,
    url: `${baseURL}/readyz`,
    reuseExistingServer: false,
    timeout: 60_000,
    env: { RUNBOARD_LOG: "warn" },
    stdout: "ignore",
    stderr: "pipe",
  },
});
