// Pages render from real data, links navigate without reloads, keyboard works.
import { audit, check, run } from "./harness.mjs";

await run("navigate", async ({ page, url, shot, config }) => {
  const ids = config.ids;
  const short = (k) => `${k.slice(0, 6)}…${k.slice(-4)}`;

  // --- overview: first view from the realtime snapshot. The browser's own cold start
  // (first page of a fresh profile) is not the dashboard's: measure a second load too.
  const leaderboard = page.getByTestId("competition-mt3").locator("table.leaderboard");
  const measure = async () => {
    await leaderboard.locator("tbody tr").first().waitFor();
    // after a reload the old page's rows can satisfy the wait: wait for this load's mark
    await page.waitForFunction(() => performance.getEntriesByName("kinitro:first-view").length);
    return page.evaluate(() => {
      const at = (n) => Math.round(performance.getEntriesByName(n)[0]?.startTime ?? -1);
      const nav = performance.getEntriesByType("navigation")[0];
      return {
        responseEnd: Math.round(nav.responseEnd),
        domContentLoaded: Math.round(nav.domContentLoadedEventEnd),
        wsOpen: at("kinitro:ws-open"),
        snapshot: at("kinitro:snapshot"),
        firstView: at("kinitro:first-view"),
      };
    });
  };
  await page.goto(url("/"));
  const cold = await measure();
  await page.reload();
  const timings = await measure();
  timings.coldBrowser = cold;
  const firstView = timings.firstView;
  // The target is 1 s on an idle machine; the bound leaves room for a loaded CI
  // host (a run beside the devnet tests took 1,090 ms) and still catches a first view
  // that waits for REST fallbacks or a timeout.
  check(firstView > 0 && firstView < 3000, `first view rendered in ${firstView} ms (< 3000)`);
  await page.getByTestId("connection").getByText("Live").waitFor();
  check((await leaderboard.locator("tbody tr").count()) === 2, "two leaderboard rows");
  const leaderRow = leaderboard.locator("tr.is-leader");
  await leaderRow.getByText("leader", { exact: true }).waitFor();
  check((await leaderRow.innerText()).includes(short(ids.leader_hotkey)), "leader row shows the miner");
  check(/\d+\.\d%/.test(await leaderRow.innerText()), "success rate shown");
  check(/\[\d+\.\d–\d+\.\d%\]/.test(await leaderRow.innerText()), "interval shown");
  const card = page.getByTestId("competition-mt3");
  check((await card.innerText()).includes("To take the lead"), "what it takes to lead shown");
  check(/needs \d+ episodes, lower bound > \d+\.\d%/.test(await card.innerText()), "crowning rule shown");
  check((await card.innerText()).includes("automatic"), "approval status shown");
  const reach = page.getByTestId("competition-reach");
  await reach.getByText("1 candidate awaiting admin approval").waitFor();
  await reach.locator("tbody tr").getByText("awaiting approval").waitFor();
  check((await page.getByTestId("stat-episodes").innerText()).startsWith("32"), "episodes stat");
  await shot("overview");
  await audit(page, "overview");

  // --- keyboard: the skip link comes first and moves focus to the content
  await page.keyboard.press("Tab");
  check((await page.evaluate(() => document.activeElement?.textContent)) === "Skip to content", "skip link first");
  await page.keyboard.press("Enter");
  check((await page.evaluate(() => location.hash)) === "#main", "skip link targets main");

  // --- client-side navigation: a marker on window survives (no reload)
  await page.evaluate(() => {
    window.__kinitroNoReload = true;
  });
  await leaderRow.getByRole("link", { name: `#${ids.submission_leader}` }).click();
  await page.waitForURL(`**/submissions/${ids.submission_leader}`);
  await page.getByRole("heading", { level: 1, name: `Submission #${ids.submission_leader}` }).waitFor();
  check(await page.evaluate(() => window.__kinitroNoReload === true), "navigated without reload");
  check(
    (await page.evaluate(() => document.activeElement?.tagName)) === "H1",
    "focus moves to the new page's heading",
  );
  await page.getByTestId("commitment-block").waitFor();
  check(/^\d+$/.test((await page.getByTestId("commitment-block").innerText()).replace(/,/g, "")), "commitment block");
  const perTask = page.getByTestId("per-task");
  await perTask.waitFor();
  for (const task of ["reach-v3", "push-v3", "pick-place-v3"]) {
    check((await perTask.innerText()).includes(task), `per-task row ${task}`);
  }
  const agreement = page.getByTestId("agreement");
  check((await agreement.locator("tbody tr").count()) === 2, "two validators in agreement table");
  check((await page.locator("body").innerText()).includes("Spread between validators"), "spread shown");
  const failures = page.getByTestId("failures");
  check((await failures.innerText()).includes("agent timeout"), "failure causes shown");
  await page.getByTestId("episodes").locator("tbody tr").first().waitFor();
  await shot("submission");
  await audit(page, "submission");

  // --- episode page: summary, reward curve, replayed trajectory, media
  await page.locator(`[data-testid="episodes"] a[href="/episodes/${ids.episode}"]`).click();
  await page.waitForURL("**/episodes/*");
  await page.getByTestId("episode-task").waitFor();
  await page.getByTestId("reward-chart").locator("canvas").waitFor();
  await page.getByTestId("actions-chart").locator("canvas").waitFor();
  await page.getByTestId("trajectory").locator("polyline.traj-cmd").first().waitFor();
  check(
    (await page.locator("body").innerText()).includes("Replayed from the full action log"),
    "trajectory replayed from the action log",
  );
  await page.locator("ul.media img").first().waitFor();
  check(
    await page.locator("ul.media img").first().evaluate((img) => img.complete && img.naturalWidth === 64),
    "media frame loads",
  );
  const cursorBefore = await page.getByTestId("traj-cursor").first().getAttribute("cx");
  await page.getByLabel("Step", { exact: true }).focus();
  await page.keyboard.press("Home");
  const cursorAfter = await page.getByTestId("traj-cursor").first().getAttribute("cx");
  check(cursorBefore !== cursorAfter, "replay slider moves the trajectory cursor (keyboard)");
  await page.getByRole("button", { name: "Replay" }).click();
  await page.waitForTimeout(400);
  await shot("episode");
  await audit(page, "episode");

  // --- jobs page via the main navigation
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Jobs" }).click();
  await page.getByRole("heading", { level: 1, name: "Jobs" }).waitFor();
  const jobRow = page.getByTestId("live-jobs").locator(`tr[data-job="${ids.job_live}"]`);
  await jobRow.waitFor();
  await jobRow.getByRole("progressbar").nth(1).waitFor();
  await jobRow.getByText("2/6").waitFor();
  await jobRow.locator('[role="progressbar"][aria-valuenow="2"]').waitFor(); // exposed to assistive tech
  await page.getByTestId("all-jobs").locator(`a[href="/jobs/${ids.job_leader}"]`).waitFor();
  await shot("jobs");
  await audit(page, "jobs");

  // job detail
  await page.getByTestId("all-jobs").locator(`a[href="/jobs/${ids.job_leader}"]`).click();
  await page.waitForURL(`**/jobs/${ids.job_leader}`);
  await page.getByRole("heading", { name: "Results" }).waitFor();
  await page.getByTestId("episodes").locator("tbody tr").nth(11).waitFor();
  await shot("job");
  await audit(page, "job");

  // --- validators and weights
  await page.getByRole("link", { name: "Validators & weights" }).click();
  const validators = page.getByTestId("validators");
  await validators.locator("tbody tr").nth(1).waitFor();
  for (const hk of ids.validators) {
    check((await validators.innerText()).includes(short(hk)), `validator ${hk} listed`);
  }
  check((await validators.innerText()).includes("connected"), "connected status shown");
  await page.getByTestId("weights-chart").locator("canvas").waitFor();
  await page.getByTestId("latest-weights").locator("li").first().waitFor();
  await shot("validators");
  await audit(page, "validators");

  // --- competition page
  await page.goto(url("/competitions/mt3"));
  await page.getByRole("heading", { level: 1, name: /MT3 manipulation/ }).waitFor();
  await page.locator("table.leaderboard tbody tr").nth(1).waitFor();
  await page.getByRole("heading", { name: "Evaluation rounds" }).waitFor();
  const baselines = await page.getByTestId("baselines").innerText();
  check(/expert/.test(baselines) && /30(\.0)?\s*%/.test(baselines), `baselines shown: ${baselines}`);
  const knobs = await page.getByTestId("benchmark-knobs").innerText();
  check(/goal hidden/.test(knobs) && /action delay 2 steps/.test(knobs), `knobs shown: ${knobs}`);
  await shot("competition");
  await audit(page, "competition");

  // --- deep link reload works (served by the SPA fallback), and unknown paths say so
  await page.goto(url(`/submissions/${ids.submission_challenger}`));
  await page.getByTestId("per-task").waitFor();
  await page.goto(url("/submissions"));
  await page.getByTestId("submissions").locator("tbody tr").nth(2).waitFor();
  check((await page.getByTestId("submissions").innerText()).includes("rejected"), "rejection listed");
  await shot("submissions");
  await audit(page, "submissions");

  // --- small screens: the layout stacks, nothing overflows horizontally
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(url("/"));
  await page.getByTestId("competition-mt3").locator("tbody tr").first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `no horizontal overflow on mobile (${overflow}px)`);
  await shot("overview-mobile");
  await page.emulateMedia({ colorScheme: "dark" });
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(url(`/submissions/${ids.submission_leader}`));
  await page.getByTestId("per-task").waitFor();
  await shot("submission-dark");
  await audit(page, "submission (dark)");
  return { firstViewMs: firstView, timings };
});
