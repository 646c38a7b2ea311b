// A devnet run's episode page plays the episode's video (rendered on request by the
// devnet's own render worker from the episode's action log).
import { check, run } from "./harness.mjs";

await run("devnet-video", async ({ page, url, shot, config }) => {
  await page.goto(url(`/episodes/${config.ids.episode}`));
  const video = page.getByTestId("episode-video");
  await video.waitFor();
  await page.waitForFunction(
    () => document.querySelector('[data-testid="episode-video"]')?.readyState >= 2,
  );
  const [width, height, duration] = await video.evaluate((v) => [v.videoWidth, v.videoHeight, v.duration]);
  check(width > 0 && height > 0 && duration > 0, `video decoded: ${width}x${height}, ${duration} s`);
  await video.evaluate((v) => v.play());
  await page.waitForFunction(
    () => document.querySelector('[data-testid="episode-video"]').currentTime > 0.2,
  );
  await shot("episode");
  return { width, height, duration };
});
