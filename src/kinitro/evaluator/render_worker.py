"""``kinitro evaluator render-worker``: drain the backend's render queue into videos.

Separate from evaluation on purpose (a frame costs ~100× a step on a CPU): the worker
claims a render over the backend's REST API (an API key with the ``render`` role), reads
the episode's action log from the media store the evaluators write to, replays it with a
camera (:mod:`.render`), writes ``episodes/<job>/video-<episode>.webm`` beside the action log
(under the same embargo) and reports it.
Progress is reported while rendering (which also renews the lease); a render that fails
(no GL, a broken log) is reported with its reason and shown on the episode page.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from kinitro.core.errors import KinitroError
from kinitro.evaluator.errors import EvaluatorError
from kinitro.evaluator.render import CONTENT_TYPES, MAX_FRAMES, render_video
from kinitro.evaluator.replay import load_action_log
from kinitro.storage.media import open_media_store

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 1.0


@dataclass
class RenderWorkerOptions:
    backend_url: str
    api_key: str
    media_url: str
    media_options: dict[str, Any] = field(default_factory=dict)
    worker: str = field(default_factory=lambda: f"render-{socket.gethostname()}")
    poll_s: float = 5.0
    max_frames: int = MAX_FRAMES
    once: bool = False
    """Stop when the queue is empty (tests, cron)."""
    timeout_s: float = 30.0


def run_render_worker(
    opts: RenderWorkerOptions,
    *,
    stop: threading.Event | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Render until ``stop`` is set (or, with ``once``, the queue is empty); renders done."""
    stop = stop or threading.Event()
    done = 0
    with httpx.Client(
        base_url=opts.backend_url,
        headers={"Authorization": f"Bearer {opts.api_key}"},
        timeout=opts.timeout_s,
        transport=transport,
    ) as http:
        while not stop.is_set():
            try:
                job = _claim(http, opts.worker)
            except httpx.HTTPError as exc:
                log.warning("render worker: backend unreachable (%s); retrying", exc)
                stop.wait(opts.poll_s)
                continue
            if job is None:
                if opts.once:
                    break
                stop.wait(opts.poll_s)
                continue
            done += _render(http, opts, job)
    return done


def _claim(http: httpx.Client, worker: str) -> dict[str, Any] | None:
    response = http.post("/api/v1/renders/claim", json={"worker": worker})
    if response.status_code == 204:
        return None
    if response.status_code in (401, 403):
        raise KinitroError(f"the backend refused the render worker's key: {response.text}")
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


def _render(http: httpx.Client, opts: RenderWorkerOptions, job: dict[str, Any]) -> int:
    """Render one claimed job and report it; 1 when a video was stored."""
    render_id = job["render_id"]
    last = [0.0]

    def report(**body: Any) -> None:
        r = http.post(f"/api/v1/renders/{render_id}", json={"worker": opts.worker, **body})
        if r.status_code == 409:
            raise _Lost(r.text)
        r.raise_for_status()

    def progress(step: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            report(state="rendering", progress=min(0.99, step / max(1, total)))

    started = time.monotonic()
    try:
        action_log = load_action_log(job["actions_ref"], opts.media_url, **opts.media_options)
        data, video = render_video(
            action_log, fmt="webm", max_frames=opts.max_frames, progress=progress
        )
        store = open_media_store(opts.media_url, **opts.media_options)
        key = store.put(job["video_ref"], data, content_type=CONTENT_TYPES["webm"])
    except _Lost as exc:
        log.warning("render %s taken over by another worker: %s", render_id, exc)
        return 0
    except (EvaluatorError, KinitroError) as exc:
        log.warning("render %s of episode %s failed: %s", render_id, job["episode_id"], exc)
        _quietly(report, state="failed", error=str(exc)[:4000])
        return 0
    except Exception as exc:
        log.exception("render %s of episode %s crashed", render_id, job["episode_id"])
        detail = f"{type(exc).__name__}: {exc}"
        _quietly(report, state="failed", error=detail[:4000])
        return 0
    report(state="done", video_ref=key, video=video.to_dict())
    log.info(
        "episode %s: %d frames, %d bytes in %.1f s",
        job["episode_id"],
        video.frames,
        video.bytes,
        time.monotonic() - started,
    )
    return 1


class _Lost(Exception):
    """The backend gave the render to another worker (our lease expired)."""


def _quietly(fn: Any, **body: Any) -> None:
    try:
        fn(**body)
    except (httpx.HTTPError, _Lost) as exc:
        log.warning("could not report a failed render: %s", exc)
