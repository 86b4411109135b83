import type { LaunchOptions } from "@playwright/test";

// Debian's chromium, with the flags this kind of machine needs (no downloads, no calls home).
export const launchOptions: LaunchOptions = {
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
};
