// Overview extras: superseded submissions hidden behind a link to the full list, the
// success-over-time chart of a competition and the validators' throughput chart, drawn
// from the backend's history series; both pages fit a phone.
import { audit, check, run } from "./harness.mjs";

await run("history", async ({ page, url, shot, config }) => {
  const ids = config.ids;

  // --- overview: the superseded submission is not among the recent ones
  await page.goto(url("/"));
  const recent = page.getByTestId("recent-submissions");
  await recent.locator("li").first().waitFor();
  check(
    (await recent.locator(`a[href="/submissions/${ids.superseded}"]`).count()) === 0,
    "superseded submission hidden on the overview",
  );
  await recent.locator(`a[href="/submissions/${ids.superseding}"]`).waitFor();
  const note = page.getByTestId("superseded-note").first();
  check((await note.innerText()).includes("1 superseded submission hidden"), "hidden ones counted");
  await note.getByRole("link", { name: "All submissions" }).click();
  await page.waitForURL("**/submissions?all=1");
  await page.getByTestId("submissions").locator(`a[href="/submissions/${ids.superseded}"]`).waitFor();
  check((await page.getByTestId("submissions").innerText()).includes("superseded"), "full list shows it");

  // --- competition page: success over time, with data
  await page.goto(url("/competitions/mt3"));
  const success = page.getByTestId("success-history");
  await success.locator("canvas").first().waitFor();
  const points = Number(await success.getAttribute("data-points"));
  check(points >= 1, `success history has points (${points})`);
  const label = await success.locator('[role="img"]').getAttribute("aria-label");
  check(/Success over time\. Share of episodes that succeeded per .+ over 24 episodes/.test(label), `chart described: ${label}`);
  const legend = await success.locator(".u-legend").innerText();
  check(legend.includes("all evaluations") && legend.includes("best submission"), "two series");
  const subs = page.getByTestId("competition-submissions");
  await subs.locator("li").first().waitFor();
  check(
    (await subs.locator(`a[href="/submissions/${ids.superseded}"]`).count()) === 0,
    "superseded submission hidden on the competition page",
  );
  await page.getByTestId("superseded-note").getByRole("link", { name: "All submissions" }).waitFor();
  await shot("competition-history");
  await audit(page, "competition (history)");

  // --- validators page: throughput over time, one line per validator
  await page.goto(url("/validators"));
  const throughput = page.getByTestId("throughput-history");
  await throughput.locator("canvas").first().waitFor();
  check(Number(await throughput.getAttribute("data-points")) >= 1, "throughput has points");
  const lines = await throughput.locator(".u-legend .u-series").count();
  check(lines === 3, `two validators plus the time axis in the legend (${lines})`);
  await shot("validators-throughput");
  await audit(page, "validators (throughput)");

  // --- the charts fit a phone
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ["/competitions/mt3", "/validators"]) {
    await page.goto(url(path));
    await page.locator("figure.chart canvas").first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `no horizontal overflow at 390 px on ${path} (${overflow}px)`);
  }
  await shot("validators-throughput-mobile");
  return { points };
});
