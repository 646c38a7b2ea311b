"""Episode video routes: the viewer's side (``/api/v1/episodes/{id}/video``) and the render
workers' side (``/api/v1/renders/…``, an API key with the ``render`` or ``admin`` role).
The rules are :mod:`kinitro.backend.renders`'."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, ConfigDict, Field

from kinitro.backend import renders
from kinitro.backend.api.schemas import SEALED_RESPONSE, error_responses
from kinitro.backend.db import repo_renders
from kinitro.backend.deps import ConnDep, Principal, RowIdPath, StateDep, principal, strict_query
from kinitro.backend.errors import ConflictError, ForbiddenError
from kinitro.protocol.views import RenderClaim, RenderState, VideoStatus

router = APIRouter(
    prefix="/api/v1",
    tags=["videos"],
    responses={**error_responses(400, 401, 403, 404, 409, 413, 429, 503), **SEALED_RESPONSE},
    dependencies=[Depends(strict_query)],
)


async def _render_worker(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.roles & {"render", "admin"}:
        raise ForbiddenError(f"API key {who.name!r} may not render (needs render or admin)")
    return who


WorkerDep = Annotated[Principal, Depends(_render_worker)]


class RenderReport(BaseModel):
    """A worker's report on the render it holds."""

    model_config = ConfigDict(extra="forbid")

    worker: str = Field(min_length=1, max_length=100)
    state: Literal["rendering", "done", "failed"]
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    video_ref: str | None = Field(default=None, max_length=500)
    video: dict[str, Any] | None = None
    """The encoder's report (format, frames, every, fps, steps, width, height, bytes …)."""
    error: str | None = Field(default=None, max_length=4000)


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker: str = Field(min_length=1, max_length=100)


@router.get("/episodes/{episode_id}/video", response_model=VideoStatus)
async def video_status(episode_id: RowIdPath, conn: ConnDep, state: StateDep) -> dict[str, Any]:
    """The episode's video: ``state`` none | queued | rendering | done | failed, progress,
    ``queue_position``, ``video_url`` and its timing (``video``: fps, every) once done,
    ``sealed_until`` before the round's reveal, ``worker_seen`` (a render worker polled
    in the last minute)."""
    return await renders.status(conn, state, episode_id)


@router.post(
    "/episodes/{episode_id}/video",
    response_model=VideoStatus,
    status_code=status.HTTP_202_ACCEPTED,
)
async def request_video(episode_id: RowIdPath, conn: ConnDep, state: StateDep) -> dict[str, Any]:
    """Ask for the episode's video (idempotent). 403 ``sealed`` before the round's reveal,
    409 without an action log, 429 ``queue_full`` when ``render_queue_max`` renders wait."""
    return await renders.request(conn, state, episode_id)


@router.post(
    "/renders/claim",
    response_model=RenderClaim,
    responses={204: {"description": "nothing to render"}},
)
async def claim(body: Claim, conn: ConnDep, state: StateDep, _who: WorkerDep) -> Any:
    """The next render for this worker (requests first), leased ``render_lease_s``."""
    state.render_worker_seen = time.monotonic()
    found = await repo_renders.claim(conn, body.worker, state.settings.render_lease_s)
    if found is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return {
        "render_id": found["id"],
        "episode_id": found["episode_id"],
        "actions_ref": found["actions_ref"],
        "steps": found["steps"],
        "video_ref": renders.video_key(found["job_id"], found["episode_id"]),
        "lease_s": state.settings.render_lease_s,
    }


@router.post("/renders/{render_id}", response_model=RenderState)
async def report(
    render_id: RowIdPath, body: RenderReport, conn: ConnDep, state: StateDep, _who: WorkerDep
) -> dict[str, Any]:
    """Progress (``rendering``), the finished video (``done`` with ``video_ref``) or why
    it failed (``failed`` with ``error``). 409 when this worker no longer holds it."""
    state.render_worker_seen = time.monotonic()
    if body.state == "done" and not body.video_ref:
        raise ConflictError("a done render needs its video_ref")
    values = body.model_dump(exclude={"worker"}, exclude_none=True)
    if body.state == "done":
        values["progress"] = 1.0
    row = await repo_renders.report(
        conn, render_id, body.worker, state.settings.render_lease_s, **values
    )
    if row is None:
        raise ConflictError(f"render {render_id} is not held by worker {body.worker!r}")
    return {"render_id": row["id"], "state": row["state"]}
