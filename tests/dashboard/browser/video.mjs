// The episode page plays the rendered video, and playing it moves the charts' step cursor;
// the leaderboard shows names and reasons.
import { audit, check, run } from "./harness.mjs";

await run("video", async ({ page, url, shot, config, allowConsoleErrors }) => {
  // the leaderboard names its miners (the committed repository) and says why a row does
  // not lead
  await page.goto(url("/"));
  const board = page.getByTestId("competition-mt3").locator("table.leaderboard");
  await board.getByTestId("miner-name").first().waitFor();
  const names = await board.getByTestId("miner-name").allInnerTexts();
  check(names.includes("alice/agent") && names.includes("bob/agent"), `names: ${names}`);
  const reasons = await board.getByTestId("row-reason").allInnerTexts();
  check(reasons.length >= 1 && reasons.every((r) => r.length > 10), `reasons: ${reasons}`);
  check((await board.locator("tr.is-leader").getByTestId("row-reason").count()) === 0, "leader has no reason");
  // a submission page says where it stands; a rejected one why it was never scored
  await page.goto(url(`/submissions/${config.ids.submission_challenger}`));
  const standing = page.getByTestId("standing").or(page.getByTestId("eligibility"));
  await standing.first().waitFor();
  check((await standing.first().innerText()).length > 15, "the challenger's standing explained");
  await page.goto(url(`/submissions/${config.ids.submission_rejected}`));
  const never = await page.getByTestId("not-scored").innerText();
  check(never.startsWith("Never scored: the submission was rejected"), never);
  await page.goto(url("/"));
  await board.getByTestId("miner-name").first().waitFor();
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  check(overflow <= 390, `overview ${overflow}px wide at 390 px`);
  await shot("overview-phone", { fullPage: false });
  const wide = [];
  for (const path of [
    `/jobs/${config.ids.job_leader}`,
    "/jobs",
    `/submissions/${config.ids.submission_challenger}`,
    "/submissions",
    "/validators",
    "/competitions/mt3",
  ]) {
    await page.goto(url(path));
    await page.getByRole("heading", { level: 1 }).waitFor();
    await page.waitForTimeout(300);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    if (width > 390) {
      const culprit = await page.evaluate(() => {
        const out = [];
        for (const el of document.querySelectorAll("main *")) {
          const r = el.getBoundingClientRect();
          if (r.right > 392 && !el.closest(".table-wrap")) {
            out.push(`${el.tagName.toLowerCase()}.${el.className}#${el.id} ${Math.round(r.right)}`);
          }
        }
        return out.slice(0, 4).join("; ");
      });
      wide.push(`${path}: ${width}px (${culprit})`);
    }
  }
  check(wide.length === 0, `pages wider than 390 px: ${wide.join(", ")}`);
  await page.setViewportSize({ width: 1280, height: 900 });

  const id = config.ids.video_episode;
  await page.goto(url(`/episodes/${id}`));
  const video = page.getByTestId("episode-video");
  await video.waitFor();
  await page.waitForFunction(
    () => document.querySelector('[data-testid="episode-video"]')?.readyState >= 2,
  );
  const size = await video.evaluate((v) => [v.videoWidth, v.videoHeight, v.duration]);
  check(size[0] === 320 && size[1] === 240 && size[2] > 0, `video decoded: ${size}`);
  const stepText = () => page.getByTestId("replay-step").innerText();
  // the cursor moves the video: Home puts both at the start
  await page.getByLabel("Step", { exact: true }).focus();
  await page.keyboard.press("Home");
  await page.waitForFunction(
    () => document.querySelector('[data-testid="episode-video"]').currentTime < 0.1,
  );
  const steps = [await stepText()];
  await video.evaluate((v) => v.play());
  await page.waitForFunction(
    () => document.querySelector('[data-testid="episode-video"]').currentTime > 0.2,
  );
  await page.waitForFunction(
    () => document.querySelector('[data-testid="episode-video"]').ended,
    null,
    { timeout: 10_000 },
  );
  steps.push(await stepText());
  check(steps[0] !== steps[1], `the step cursor followed the video: ${steps}`);
  const played = await video.evaluate((v) => v.played.length > 0 && v.played.end(0) > 0.3);
  check(played, "the video played");
  await shot("episode-video");
  await audit(page, "episode with video");
  // a phone: the video fits the width
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= 390);
  const culprit = await page.evaluate(() =>
    [...document.querySelectorAll("main *")]
      .filter((el) => el.getBoundingClientRect().right > 392 && !el.closest(".table-wrap"))
      .slice(0, 4)
      .map((el) => `${el.tagName.toLowerCase()}.${el.className} ${Math.round(el.getBoundingClientRect().right)}`)
      .join("; "),
  );
  check(fits, `the episode page fits 390 px (${culprit})`);
  const videoWidth = await video.evaluate((v) => v.getBoundingClientRect().width);
  check(videoWidth <= 390, `video ${videoWidth}px wide at 390 px`);
  await shot("episode-video-phone", { fullPage: false });
  // an unknown address: the app's own page (the document's 404 is expected), not JSON
  allowConsoleErrors(/status of 404/);
  await page.goto(url("/no-such-page"));
  await page.getByRole("heading", { level: 1, name: "Page not found" }).waitFor();
  check(await page.evaluate(() => document.documentElement.scrollWidth <= 390), "404 page fits");
  return { steps, pageFitsPhone: fits };
});
