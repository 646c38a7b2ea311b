// Harness of the dashboard browser scenarios: playwright-core driving Debian's Chromium.
//
// A scenario is run by pytest as `node <scenario>.mjs '<json config>'` and talks to it
// with JSON lines: it prints {"event": "need", "what": ...} when it wants the test to do
// something to the backend (then reads one JSON line from stdin), and finally
// {"event": "done", ...} or {"event": "error", ...}.

import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";

const config = JSON.parse(process.argv[2] ?? "{}");
const require = createRequire(path.join(config.webDir, "package.json"));
const { chromium } = require("playwright-core");

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const lines = readline.createInterface({ input: process.stdin });
const pending = [];
const waiting = [];
lines.on("line", (line) => {
  const w = waiting.shift();
  if (w) w(line);
  else pending.push(line);
});

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** Ask the test to act on the backend; resolves with its JSON answer. */
export async function need(what, data = {}) {
  emit({ event: "need", what, ...data });
  const line = pending.shift() ?? (await new Promise((resolve) => waiting.push(resolve)));
  return JSON.parse(line);
}

export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

export async function run(name, scenario) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "kinitro-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    reducedMotion: "reduce",
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(config.timeoutMs ?? 10_000);
  const problems = [];
  const base = new URL(config.baseUrl);
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console error: ${msg.text()}`);
  });
  page.on("request", (req) => {
    const url = new URL(req.url());
    if (!["data:", "blob:"].includes(url.protocol) && url.host !== base.host) {
      problems.push(`request outside this machine's backend: ${req.url()}`);
    }
  });
  const shots = [];
  const ctx = {
    config,
    page,
    context,
    url: (p) => new URL(p, config.baseUrl).toString(),
    async shot(label, options = {}) {
      const file = path.join(config.screenshots, `${name}-${label}.png`);
      await page.screenshot({ path: file, fullPage: true, ...options });
      shots.push(file);
      return file;
    },
  };
  try {
    const result = (await scenario(ctx)) ?? {};
    if (problems.length) throw new Error(problems.join("\n"));
    emit({ event: "done", screenshots: shots, ...result });
  } catch (err) {
    try {
      await ctx.shot("failure");
    } catch {
      /* page gone */
    }
    emit({
      event: "error",
      message: String(err?.message ?? err),
      stack: String(err?.stack ?? ""),
      problems,
      url: page.url(),
      screenshots: shots,
    });
    process.exitCode = 1;
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
    lines.close();
  }
}
