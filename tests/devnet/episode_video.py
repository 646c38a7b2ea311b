"""A video plays on an episode page of a devnet run: an episode of a revealed round is
asked for its video over the public API (on demand), the devnet's own render worker
renders it from the episode's action log, and Chromium plays it on the episode page
(``tests/dashboard/browser/devnet_video.mjs``: ready to play, ``currentTime`` advancing)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = ROOT / "src" / "kinitro" / "backend" / "web"
SCENARIO = ROOT / "tests" / "dashboard" / "browser" / "devnet_video.mjs"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def _revealed_episode(http: httpx.Client) -> int:
    """An episode of a revealed round with an action log: one already queued or rendered
    at the reveal (the leader's, a failed one) if there is one, so asking for it never
    meets a full render queue."""
    episodes = http.get("/api/v1/episodes", params={"limit": 200}).json()["items"]
    open_ = [e["id"] for e in episodes if e.get("sealed_until") is None and e.get("actions_ref")]
    if not open_:
        pytest.fail(f"no revealed episode with an action log among {len(episodes)}")
    for episode in open_:
        if http.get(f"/api/v1/episodes/{episode}/video").json()["state"] != "none":
            return int(episode)
    return int(open_[0])


def _render(http: httpx.Client, episode: int, within: float) -> dict[str, Any]:
    """Ask for the episode's video (idempotent; 429 while the queue is full) and wait for
    the render worker to finish it."""
    deadline = time.monotonic() + within
    while (asked := http.post(f"/api/v1/episodes/{episode}/video")).status_code == 429:
        assert time.monotonic() < deadline, asked.text
        time.sleep(2)
    assert asked.status_code == 202, asked.text
    while True:
        status: dict[str, Any] = http.get(f"/api/v1/episodes/{episode}/video").json()
        if status["state"] == "done":
            return status
        assert status["state"] != "failed", status
        assert time.monotonic() < deadline, f"no video after {within} s: {status}"
        time.sleep(1)


def check_a_video_plays(backend_url: str, within: float = 300) -> dict[str, Any]:
    """Render a revealed episode's video on demand and play it in Chromium."""
    assert (WEB_DIR / "node_modules" / "playwright-core").is_dir(), "run scripts/build-web"
    with httpx.Client(base_url=backend_url, timeout=10) as http:
        episode = _revealed_episode(http)
        status = _render(http, episode, within)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    config = {
        "baseUrl": backend_url,
        "webDir": str(WEB_DIR),
        "screenshots": str(SCREENSHOTS),
        "ids": {"episode": episode},
        "timeoutMs": 30_000,
    }
    proc = subprocess.run(
        ["node", str(SCENARIO), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    outcome = next(
        (json.loads(line) for line in proc.stdout.splitlines() if '"event"' in line), None
    )
    assert proc.returncode == 0 and outcome and outcome["event"] == "done", (
        f"video scenario failed: {outcome}\n{proc.stderr[-2000:]}\nrender: {status}"
    )
    return {**outcome, "render": status}
