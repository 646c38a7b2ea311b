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

/**
 * A small accessibility audit of the current page: alt texts, labelled controls, named
 * links and buttons, captioned tables, one h1, no skipped heading level, unique ids.
 */
export async function audit(page, where) {
  const problems = await page.evaluate(() => {
    const out = [];
    const name = (el) =>
      (el.getAttribute("aria-label") || el.textContent || el.getAttribute("title") || "").trim();
    for (const img of document.querySelectorAll("img")) {
      if (!img.hasAttribute("alt")) out.push(`img without alt: ${img.src}`);
    }
    for (const el of document.querySelectorAll("input, select, textarea")) {
      const labelled =
        el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
      if (!labelled) out.push(`unlabelled ${el.tagName.toLowerCase()} #${el.id}`);
    }
    for (const el of document.querySelectorAll("a[href], button")) {
      if (!name(el)) out.push(`${el.tagName.toLowerCase()} without a name: ${el.outerHTML.slice(0, 80)}`);
    }
    for (const t of document.querySelectorAll("table:not([aria-hidden=true])")) {
      if (!t.querySelector("caption") && !t.getAttribute("aria-label")) out.push("table without caption");
    }
    for (const el of document.querySelectorAll('[role="img"], [role="progressbar"]')) {
      if (!el.getAttribute("aria-label")) out.push(`${el.getAttribute("role")} without aria-label`);
    }
    const h1 = document.querySelectorAll("h1").length;
    if (h1 !== 1) out.push(`${h1} h1 elements`);
    let level = 0;
    for (const h of document.querySelectorAll("main h1, main h2, main h3, main h4")) {
      const l = Number(h.tagName[1]);
      if (l > level + 1) out.push(`heading level skipped before "${h.textContent.trim()}"`);
      level = l;
    }
    const ids = [...document.querySelectorAll("[id]")].map((e) => e.id);
    const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
    if (dup.length) out.push(`duplicate ids: ${[...new Set(dup)].join(", ")}`);
    // WCAG AA contrast of every element that carries text (4.5:1, 3:1 for large text).
    const rgba = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
      return [r, g, b, a];
    };
    const lum = ([r, g, b]) => {
      const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgba(getComputedStyle(e).backgroundColor);
        if (c && c[3] > 0.5) return c;
      }
      return [255, 255, 255, 1];
    };
    const seen = new Set();
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const el = walker.currentNode.parentElement;
      if (!el || seen.has(el) || !walker.currentNode.textContent.trim()) continue;
      seen.add(el);
      if (el.closest("[aria-hidden=true], .sr-only, noscript, svg, .skip")) continue;
      const style = getComputedStyle(el);
      if (style.visibility === "hidden" || style.display === "none") continue;
      const fg = rgba(style.color);
      if (!fg) continue;
      const l1 = lum(fg);
      const l2 = lum(background(el));
      const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
      const size = Number.parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) {
        out.push(`contrast ${ratio.toFixed(2)} for "${walker.currentNode.textContent.trim().slice(0, 30)}"`);
      }
    }
    if (!document.documentElement.lang) out.push("no lang on <html>");
    if (!document.title) out.push("no document title");
    return out;
  });
  if (problems.length) throw new Error(`accessibility audit of ${where}:\n${problems.join("\n")}`);
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
  const allowedConsole = [];
  const base = new URL(config.baseUrl);
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !allowedConsole.some((re) => re.test(msg.text()))) {
      problems.push(`console error: ${msg.text()}`);
    }
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
    /** Console errors matching `re` are expected from now on (e.g. during an outage). */
    allowConsoleErrors(re) {
      allowedConsole.push(re);
    },
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
