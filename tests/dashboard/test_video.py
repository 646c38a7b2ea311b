"""Episode videos end to end: queued at the round's reveal (the leader's episodes, a
sample of failed ones) and on request, bounded, rendered by a real
`kinitro evaluator render-worker` process from the action logs in the media store, served
as media, and played in Chromium on the episode page in step with the charts."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from .stack import Stack, wait_for
from .test_dashboard import run_scenario


def _worker(stack: Stack, key: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINITRO_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kinitro",
            "evaluator",
            "render-worker",
            "--backend-url",
            stack.url,
            "--api-key",
            key,
            "--media",
            str(stack.backend.media_dir),
            "--poll",
            "0.5",
            "--max-frames",
            "12",
            *extra,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.timeout(420)  # a real render worker on a shared 2-core machine
async def test_videos_are_queued_rendered_and_played(stack: Stack) -> None:
    async with stack.http() as http:
        assert (await http.post("/api/v1/renders/claim", json={"worker": "w"})).status_code == 401
    async with stack.http(admin=True) as admin:
        made = await admin.post("/api/v1/admin/api-keys", json={"name": "r", "roles": ["read"]})
        reader = made.json()["key"]
        made = await admin.post("/api/v1/admin/api-keys", json={"name": "w", "roles": ["render"]})
        renderer = made.json()["key"]
    async with stack.http() as http:
        refused = await http.post(
            "/api/v1/renders/claim",
            json={"worker": "w"},
            headers={"Authorization": f"Bearer {reader}"},
        )
        assert refused.status_code == 403

    # the stack's rounds last 4 s: at each reveal the leader's episodes of that round and
    # one failed episode of the others are queued (which ones depends on when the leader
    # was crowned: the first rounds may reveal before)
    logged, unlogged = [], []
    for job in (stack.ids["job_leader"], stack.ids["job_challenger"]):
        page = await stack.get("/api/v1/episodes", job_id=job, limit=50)
        logged += [e["id"] for e in page["items"] if e["actions_ref"]]
        unlogged += [e["id"] for e in page["items"] if not e["actions_ref"]]
    assert logged

    async def auto_queued() -> Any:
        await asyncio.sleep(0.5)  # within the per-address REST budget
        for e in logged:
            status = await stack.get(f"/api/v1/episodes/{e}/video")
            if status["state"] == "queued" and status["origin"] == "auto":
                return status
        return None

    queued = await wait_for(auto_queued, within=30, what="episodes queued at a reveal")
    assert queued["sealed_until"] is None and queued["has_action_log"] is True
    assert queued["worker_seen"] is False
    episode = queued["episode_id"]  # the one the browser plays

    failed = await stack.get(
        "/api/v1/episodes", job_id=stack.ids["job_challenger"], success=False, limit=50
    )
    with_log = [e["id"] for e in failed["items"] if e["actions_ref"]]
    async with stack.http() as http:
        for e in unlogged[:1]:  # a validator that logged no actions: nothing to film
            nolog = await http.post(f"/api/v1/episodes/{e}/video")
            assert nolog.status_code == 409 and "no action log" in nolog.text, nolog.text
        answers = []
        for e in with_log:  # requests until the bounded queue (5) is full
            if (await http.get(f"/api/v1/episodes/{e}/video")).json().get("state") != "none":
                continue
            asked = await http.post(f"/api/v1/episodes/{e}/video")
            answers.append(asked)
            if asked.status_code == 429:
                break
        assert answers[-1].status_code == 429 and answers[-1].json()["code"] == "queue_full"
        assert all(a.status_code == 202 for a in answers[:-1]), [a.text for a in answers]
        if len(answers) > 1:
            first = answers[0].json()
            assert first["state"] == "queued" and first["origin"] == "request"
            assert first["queue_position"] == 0  # requests go first

    started = time.monotonic()
    worker = _worker(stack, renderer, "--once")
    _, err = await asyncio.to_thread(worker.communicate, timeout=300)
    took = time.monotonic() - started
    assert worker.returncode == 0, err.decode()[-3000:]
    assert b"rendered " in err and b" failed" not in err, err.decode()[-2000:]
    print(f"{err.decode().strip().splitlines()[-1]} (at most 12 frames) in {took:.1f} s")

    done = await stack.get(f"/api/v1/episodes/{episode}/video")
    assert done["state"] == "done" and done["progress"] == 1.0, done
    frames = done["video"]["frames"]
    assert 2 <= frames <= 12 and done["video"]["format"] == "webm"
    async with stack.http() as http:
        media = await http.get(done["video_url"])
        assert media.status_code == 200 and media.headers["content-type"] == "video/webm"
        ranged = await http.get(done["video_url"], headers={"Range": "bytes=0-99"})
        assert ranged.status_code == 206 and len(ranged.content) == 100  # seekable
    import av  # noqa: PLC0415 - PyAV only where a test decodes a video

    with av.open(io.BytesIO(media.content)) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames

    stack.ids["video_episode"] = episode
    rejected = await stack.get("/api/v1/submissions", status="rejected")
    stack.ids["submission_rejected"] = rejected["items"][0]["id"]
    outcome = await run_scenario("video", stack)
    assert outcome["steps"][0] != outcome["steps"][-1], outcome
