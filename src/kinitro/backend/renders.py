"""Episode videos: a bounded render queue that render workers drain.

The backend never renders: a render worker (``kinitro evaluator render-worker``, which has
the simulator) claims a render, reads the episode's action log from the media store,
replays it with a camera (:mod:`kinitro.evaluator.render`), writes the video to the media
store and reports it here; the dashboard plays it on the episode page.

* **Sealed until the reveal.** An action log replays the episode's seed, and a video shows
  it: nothing is rendered, on request or automatically, before the episode's round is
  revealed, and the video is stored with the episode's media
  (``episodes/<job>/video-<episode>.webm``), so ``/media`` serves it under the same
  embargo (:mod:`.embargo`).
* **What is rendered.** When a round reveals, every episode of its current leaders' jobs
  and the first ``render_failed_sample`` failed episodes of the others are queued
  (``auto``); anyone can ask for an episode from its page (``request``, served first).
* **Bounded.** At most ``render_queue_max`` renders wait or run; a request beyond is
  refused (429), an automatic one skipped. A worker holds a render for
  ``render_lease_s`` per report; one that stops reporting gives it back to the queue.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kinitro.backend import embargo
from kinitro.backend.db import repo_ingest, repo_renders, repo_rounds, repo_scoring
from kinitro.backend.errors import ConflictError, NotFoundError, QueueFullError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from kinitro.backend.state import BackendState

WORKER_FRESH_S = 60.0


def video_key(job_id: str, episode_id: int, fmt: str = "webm") -> str:
    """Media-store key of an episode's video: beside its action log, under the embargo."""
    return f"{embargo.MEDIA_PREFIX}/{job_id}/video-{episode_id}.{fmt}"


async def request(conn: AsyncConnection, state: BackendState, episode_id: int) -> dict[str, Any]:
    """Queue the episode's video on a viewer's request (or return the existing render)."""
    ep = await repo_ingest.get_episode(conn, episode_id)
    if ep is None:
        raise NotFoundError(f"no episode {episode_id}")
    if not ep["actions_ref"]:
        raise ConflictError("this episode has no action log: there is nothing to replay")
    embargo.require_open(ep, "the episode's video")
    existing = await repo_renders.of_episode(conn, episode_id)
    fresh = existing is None or existing["state"] == "failed"
    if fresh and await repo_renders.waiting(conn) >= state.settings.render_queue_max:
        raise QueueFullError(
            f"the render queue is full ({state.settings.render_queue_max}): try later"
        )
    await repo_renders.enqueue(conn, episode_id, "request")
    return await status(conn, state, episode_id)


async def status(conn: AsyncConnection, state: BackendState, episode_id: int) -> dict[str, Any]:
    """What the episode page shows: the render's state, progress, place in the queue,
    the video's URL and timing once done, or why there is none."""
    ep = await repo_ingest.get_episode(conn, episode_id)
    if ep is None:
        raise NotFoundError(f"no episode {episode_id}")
    render = await repo_renders.of_episode(conn, episode_id)
    out: dict[str, Any] = {
        "episode_id": episode_id,
        "state": "none",
        "has_action_log": bool(ep["actions_ref"]),
        "sealed_until": embargo.sealed_until(ep),
        "worker_seen": _worker_seen(state),
    }
    if render is None:
        return out
    out.update(
        state=render["state"],
        origin=render["origin"],
        progress=render["progress"],
        error=render["error"],
        queue_position=await repo_renders.position(conn, render),
    )
    if render["state"] == "done" and render["video_ref"]:
        out["video_url"] = f"{embargo.MEDIA_ROUTE}/{render['video_ref']}"
        out["video"] = render["video"]
    return out


def _worker_seen(state: BackendState) -> bool:
    seen = state.render_worker_seen
    return seen is not None and time.monotonic() - seen < WORKER_FRESH_S


async def film_revealed_round(conn: AsyncConnection, state: BackendState, round_id: str) -> int:
    """Queue the automatic renders of a round that has just revealed; how many."""
    rnd = await repo_rounds.get_round(conn, round_id)
    if rnd is None:
        return 0
    leader = await repo_scoring.current_leader(conn, rnd["competition_id"])
    leaders = [int(leader["submission_id"])] if leader else []
    wanted = await repo_renders.episodes_to_film(
        conn, round_id, leaders, state.settings.render_failed_sample
    )
    queued = 0
    for episode_id in wanted:
        if await repo_renders.waiting(conn) >= state.settings.render_queue_max:
            break
        if await repo_renders.of_episode(conn, episode_id) is None:
            await repo_renders.enqueue(conn, episode_id, "auto")
            queued += 1
    return queued
