// New events appear live, without reloads: a submission, job progress, a finished
// evaluation reaching the leaderboard, a validator connecting.
import { check, need, run } from "./harness.mjs";

await run("live", async ({ page, url, shot, config, allowConsoleErrors }) => {
  const ids = config.ids;
  const short = (k) => `${k.slice(0, 6)}…${k.slice(-4)}`;
  await page.goto(url("/"));
  await page.getByTestId("connection").getByText("Live").waitFor();
  await page.getByTestId("competition-mt3").locator("tbody tr").nth(1).waitFor();
  await page.evaluate(() => {
    window.__kinitroNoReload = true;
  });
  const requests = [];
  page.on("request", (r) => r.resourceType() === "document" && requests.push(r.url()));

  // 1. a new commitment on chain → submission_received in the feed and the list
  const { miner } = await need("new_submission");
  const activity = page.getByTestId("activity");
  await activity.getByText("New submission").first().waitFor();
  await page.getByTestId("recent-submissions").getByText(short(miner)).waitFor();

  // 2. a validator reports progress on the job in flight → the live jobs table moves
  await need("progress", { done: 4 });
  const liveJobs = page.getByTestId("live-jobs");
  const row = liveJobs.locator(`tr[data-job="${ids.job_live}"]`);
  await row.getByText("4/6").waitFor();
  await activity.getByText("(4/6)").first().waitFor();
  await shot("overview-live");

  // 3. carol's evaluation completes on both validators → she joins the leaderboard
  await need("finish_live_job");
  await page.getByTestId("competition-mt3").locator("tbody tr").nth(2).waitFor({ timeout: 20_000 });
  check(
    (await page.getByTestId("competition-mt3").innerText()).includes(short(ids.carol_hotkey)),
    "the new leaderboard row is carol's",
  );
  await activity.getByText("Leaderboard of").first().waitFor();

  // 4. on the validators page, a new validator connecting appears live
  await page.getByRole("link", { name: "Validators & weights" }).click();
  const table = page.getByTestId("validators");
  await table.locator("tbody tr").nth(1).waitFor();
  const { hotkey } = await need("validator_connect");
  await table.locator(`tr[data-validator="${hotkey}"]`).getByText("connected").waitFor();
  await shot("validators-live");

  // 5. the backend restarts: the page says so, reconnects and re-renders from a snapshot
  allowConsoleErrors(/ERR_CONNECTION_REFUSED/);
  await need("backend_down");
  await page.getByTestId("connection").getByText("Reconnecting…").waitFor();
  await need("backend_up");
  await page.getByTestId("connection").getByText("Live").waitFor({ timeout: 30_000 });
  await table.locator("tbody tr").nth(2).waitFor();

  check(await page.evaluate(() => window.__kinitroNoReload === true), "no reload happened");
  check(requests.length === 0, `no document request after the first load (${requests.join(", ")})`);
});
