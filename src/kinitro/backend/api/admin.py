"""Admin REST routes (``/api/v1/admin``): need an API key with the ``admin`` role."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, status

from kinitro.backend import apikeys, events, quorum
from kinitro.backend.api.schemas import (
    ApiKeyIn,
    ApiKeyOut,
    Competition,
    CompetitionIn,
    CompetitionPatch,
    DecisionIn,
    error_responses,
)
from kinitro.backend.db import (
    repo_admin,
    repo_competitions,
    repo_jobs,
    repo_scoring,
    repo_standing,
    repo_submissions,
)
from kinitro.backend.db.common import utcnow
from kinitro.backend.deps import (
    AdminDep,
    CompetitionIdPath,
    CompetitionIdQuery,
    ConnDep,
    HotkeyPath,
    JobIdPath,
    RowIdPath,
    StateDep,
    strict_query,
)
from kinitro.backend.errors import BadRequestError, ConflictError, NotFoundError

router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 403, 409, 503),
    dependencies=[Depends(strict_query)],
)
NOT_FOUND = error_responses(404)


@router.post(
    "/competitions",
    response_model=Competition,
    status_code=status.HTTP_201_CREATED,
)
async def create_competition(
    body: CompetitionIn, conn: ConnDep, who: AdminDep, state: StateDep
) -> dict[str, Any]:
    values = body.model_dump(mode="json")
    if problem := quorum.problem(values, state.settings):
        raise BadRequestError(problem)
    row = await repo_competitions.create_competition(conn, values)
    if row is None:
        raise ConflictError(f"competition {body.id!r} already exists")
    return quorum.with_effective(row, state.settings)


@router.patch(
    "/competitions/{competition_id}",
    response_model=Competition,
    responses=error_responses(400, 404),
)
async def update_competition(
    competition_id: CompetitionIdPath,
    body: CompetitionPatch,
    conn: ConnDep,
    who: AdminDep,
    state: StateDep,
) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True, mode="json")
    if not values:
        raise BadRequestError("nothing to update")
    current = await repo_competitions.get_competition(conn, competition_id)
    if current is None:
        raise NotFoundError(f"no competition {competition_id!r}")
    if problem := quorum.problem({**current, **values}, state.settings):
        raise BadRequestError(problem)
    row = await repo_competitions.update_competition(conn, competition_id, values)
    if row is None:
        raise NotFoundError(f"no competition {competition_id!r}")
    return quorum.with_effective(row, state.settings)


async def _set_active(
    conn: ConnDep, state: StateDep, competition_id: str, active: bool
) -> dict[str, Any]:
    row = await repo_competitions.update_competition(conn, competition_id, {"active": active})
    if row is None:
        raise NotFoundError(f"no competition {competition_id!r}")
    return quorum.with_effective(row, state.settings)


@router.post(
    "/competitions/{competition_id}/activate", response_model=Competition, responses=NOT_FOUND
)
async def activate(
    competition_id: CompetitionIdPath, conn: ConnDep, who: AdminDep, state: StateDep
) -> dict[str, Any]:
    return await _set_active(conn, state, competition_id, True)


@router.post(
    "/competitions/{competition_id}/deactivate", response_model=Competition, responses=NOT_FOUND
)
async def deactivate(
    competition_id: CompetitionIdPath, conn: ConnDep, who: AdminDep, state: StateDep
) -> dict[str, Any]:
    return await _set_active(conn, state, competition_id, False)


@router.post("/validators/{hotkey}/reinstate", responses=NOT_FOUND)
async def reinstate_validator(hotkey: HotkeyPath, conn: ConnDep, who: AdminDep) -> dict[str, Any]:
    """End a validator's suspension now; its strikes count afresh from now."""
    row = await repo_standing.reinstate(conn, hotkey)
    if row is None:
        raise NotFoundError(f"no validator {hotkey!r}")
    return row


@router.get("/api-keys", response_model=list[ApiKeyOut])
async def list_keys(conn: ConnDep, who: AdminDep) -> list[dict[str, Any]]:
    return await repo_admin.list_keys(conn)


@router.post("/api-keys", response_model=ApiKeyOut, status_code=status.HTTP_201_CREATED)
async def create_key(body: ApiKeyIn, conn: ConnDep, who: AdminDep) -> dict[str, Any]:
    """Create a key; the secret is returned once and stored only as a hash."""
    key, prefix, digest = apikeys.generate()
    expires = utcnow() + timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
    row = await repo_admin.create_key(
        conn,
        name=body.name,
        prefix=prefix,
        key_hash=digest,
        roles=list(body.roles),
        expires_at=expires,
    )
    return {**row, "key": key}


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def revoke_key(key_id: RowIdPath, conn: ConnDep, who: AdminDep) -> None:
    if not await repo_admin.revoke_key(conn, key_id):
        raise NotFoundError(f"no active API key {key_id}")


@router.get("/leader-candidates")
async def leader_candidates(
    conn: ConnDep, who: AdminDep, competition_id: CompetitionIdQuery = None
) -> list[dict[str, Any]]:
    return await repo_scoring.candidates(conn, competition_id=competition_id)


async def _candidate(conn: ConnDep, decision_id: int) -> dict[str, Any]:
    row = await repo_scoring.get_decision(conn, decision_id)
    if row is None:
        raise NotFoundError(f"no leader decision {decision_id}")
    if row["status"] != "candidate":
        raise ConflictError(f"decision {decision_id} is {row['status']}, not a candidate")
    return row


@router.post("/leader-candidates/{decision_id}/approve", responses=NOT_FOUND)
async def approve(
    decision_id: RowIdPath, conn: ConnDep, who: AdminDep, body: DecisionIn | None = None
) -> dict[str, Any]:
    """Crown the candidate: the previous leader is dethroned."""
    row = await _candidate(conn, decision_id)
    await repo_scoring.dethrone(conn, row["competition_id"], by=who.name)
    await repo_scoring.set_decision(
        conn, decision_id, "leader", by=who.name, reason=body.reason if body else None
    )
    await repo_scoring.withdraw_candidates(conn, row["competition_id"])
    await events.emit(
        conn,
        "leaderboard_updated",
        competition_id=row["competition_id"],
        leader_submission_id=str(row["submission_id"]),
    )
    return {**row, "status": "leader"}


@router.post("/leader-candidates/{decision_id}/reject", responses=NOT_FOUND)
async def reject(
    decision_id: RowIdPath, conn: ConnDep, who: AdminDep, body: DecisionIn | None = None
) -> dict[str, Any]:
    row = await _candidate(conn, decision_id)
    await repo_scoring.set_decision(
        conn, decision_id, "rejected", by=who.name, reason=body.reason if body else None
    )
    return {**row, "status": "rejected"}


@router.post("/jobs/{job_id}/rerun", responses=NOT_FOUND)
async def rerun_job(
    job_id: JobIdPath, conn: ConnDep, state: StateDep, who: AdminDep
) -> dict[str, Any]:
    """Queue the job again: results and assignments are discarded, validators re-assigned."""
    if not await repo_jobs.requeue_job(conn, job_id):
        raise NotFoundError(f"no job {job_id!r}")
    state.scheduler_wake.set()
    return {"job_id": job_id, "state": "queued"}


@router.post("/submissions/{submission_id}/rerun", responses=NOT_FOUND)
async def rerun_submission(
    submission_id: RowIdPath, conn: ConnDep, state: StateDep, who: AdminDep
) -> dict[str, Any]:
    """Verify the artifact again and re-run every job of the submission."""
    sub = await repo_submissions.get_submission(conn, submission_id)
    if sub is None:
        raise NotFoundError(f"no submission {submission_id}")
    # the submission row first, then its jobs: the order the chain monitor locks them in
    await repo_submissions.set_status(
        conn, submission_id, "pending", rejection_reason=None, rejection_detail=None
    )
    jobs = await repo_jobs.jobs_of_submission(conn, submission_id)
    for job in jobs:
        await repo_jobs.requeue_job(conn, job["id"])
    state.scheduler_wake.set()
    return {"submission_id": submission_id, "status": "pending", "jobs_requeued": len(jobs)}
