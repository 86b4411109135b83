import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { defineConfig } from "@playwright/test";
import { launchOptions } from "./browser";
import { signedInAsAlice } from "./global-setup";

// Four free loopback ports, asked of the system once by Playwright's main process (its
// workers load this file again and inherit them), so that the tests never meet another
// program, or another run, on a fixed port.
process.env.RUNBOARD_E2E_PORTS ??= execFileSync(process.execPath, [
  "-e",
  `const net = require("node:net");
   Promise.all([0, 1, 2, 3].map(() => new Promise((up) => {
     const server = net.createServer();
     server.listen(0, "127.0.0.1", () => up(server));
   }))).then((servers) => {
     console.log(servers.map((s) => s.address().port).join(","));
     servers.forEach((s) => s.close());
   });`,
])
  .toString()
  .trim();
const [port, oidcPort, providerPort, scalePort] = String(process.env.RUNBOARD_E2E_PORTS)
  .split(",")
  .map(Number);

// The server under test is the release runboard binary and site that users run, built by
// `cargo xtask build --release` (scripts/test does it first), run as `runboard demo`:
// a fresh SQLite store and the demo fleet with its load generator.
const baseURL = `http://127.0.0.1:${port}`;

// A second Runboard, `runboard serve` with OIDC login against a real OpenID provider
// (the npm package oidc-provider, end2end/oidc/provider.mjs) on loopback. Its configuration
// names the provider's port, so it is written for this run's ports.
const oidcConfig = "../target/e2e-oidc/runboard.toml";
mkdirSync("../target/e2e-oidc", { recursive: true });
writeFileSync(
  oidcConfig,
  readFileSync("oidc/runboard.toml", "utf8").replaceAll("PROVIDER_PORT", String(providerPort)),
);
// A third: `runboard demo` after an outage of 100,000 failed onboarding sagas, for the
// action page at fleet scale (tests/scale.spec.ts).
export const scaleBaseURL = `http://127.0.0.1:${scalePort}`;
export const scaleEntities = 100_000;
export const oidcBaseURL = `http://127.0.0.1:${oidcPort}`;
const providerURL = `http://127.0.0.1:${providerPort}`;

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  forbidOnly: true,
  retries: 0,
  workers: 2,
  reporter: [["list"]],
  globalSetup: "./global-setup.ts",
  // The action page at fleet scale is timed, so it runs alone once every other test is
  // done: on two cores, a second browser rendering beside it measures the machine, not
  // the page.
  // The README's screenshots are their own command (scripts/screenshots), not a test: they
  // rewrite tracked files.
  projects: process.env.RUNBOARD_SCREENSHOTS
    ? [{ name: "screenshots", testMatch: /(screenshots|runbooks)\.spec\.ts/ }]
    : [
        { name: "screens", testIgnore: /(scale|screenshots)\.spec\.ts/ },
        { name: "fleet scale", testMatch: /scale\.spec\.ts/, dependencies: ["screens"] },
      ],
  use: {
    baseURL,
    storageState: signedInAsAlice,
    trace: "retain-on-failure",
    launchOptions,
  },
  webServer: [
    {
      command: `rm -rf ../target/e2e-data && exec ../target/release/runboard demo --listen 127.0.0.1:${port} --data-dir ../target/e2e-data --site-root ../target/site`,
      url: `${baseURL}/readyz`,
      reuseExistingServer: false,
      timeout: 60_000,
      env: { RUNBOARD_LOG: "warn" },
      stdout: "ignore",
      stderr: "pipe",
    },
    {
      command: `rm -rf ../target/e2e-scale-data && exec ../target/release/runboard demo --listen 127.0.0.1:${scalePort} --data-dir ../target/e2e-scale-data --site-root ../target/site --outage ${scaleEntities}`,
      url: `${scaleBaseURL}/readyz`,
      reuseExistingServer: false,
      timeout: 120_000,
      env: { RUNBOARD_LOG: "warn" },
      stdout: "ignore",
      stderr: "pipe",
    },
    {
      command: "exec node oidc/provider.mjs",
      url: `${providerURL}/.well-known/openid-configuration`,
      reuseExistingServer: false,
      // As long as the Runboards get: it starts beside them, one seeding 100,000 sagas, and
      // on a new machine's first run it missed 30 s once (it answered in 8 s alone).
      timeout: 60_000,
      env: {
        PORT: String(providerPort),
        CLIENTS: JSON.stringify([
          {
            client_id: "runboard",
            client_secret: "e2e-client-secret",
            redirect_uris: [`${oidcBaseURL}/auth/callback`],
          },
        ]),
        USERS: JSON.stringify({
          alice: { name: "Alice Ops", groups: ["sre"] },
          carol: { name: "Carol Business", groups: ["business"] },
          dave: { name: "Dave Departing", groups: ["business"] },
          adele: { name: "Adele Admin", groups: ["platform"] },
        }),
      },
      stdout: "ignore",
      stderr: "pipe",
    },
    {
      command: `rm -rf ../target/e2e-oidc-data && exec ../target/release/runboard serve --config ${oidcConfig} --listen 127.0.0.1:${oidcPort}`,
      url: `${oidcBaseURL}/readyz`,
      reuseExistingServer: false,
      timeout: 60_000,
      env: {
        RUNBOARD_LOG: "warn",
        RUNBOARD_OIDC_CLIENT_SECRET: "e2e-client-secret",
      },
      stdout: "ignore",
      stderr: "pipe",
    },
  ],
});
