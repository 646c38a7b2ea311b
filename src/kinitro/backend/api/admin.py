"""Admin REST routes (``/api/v1/admin``): need an API key with the ``admin`` role."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from kinitro.backend import apikeys, events, quorum
from kinitro.backend.api.schemas import (
    ApiKeyIn,
    ApiKeyOut,
    CompetitionIn,
    CompetitionPatch,
    DecisionIn,
    error_responses,
)
from kinitro.backend.cancellation import cancel_jobs_everywhere
from kinitro.backend.competition_gate import activation_problem, fingerprint_of
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
from kinitro.protocol.baselines import Baselines
from kinitro.protocol.presets import PRESETS
from kinitro.protocol.realtime import LeaderboardUpdatedEvent
from kinitro.protocol.views import (
    Competition,
    CompetitionPreset,
    JobAction,
    LeaderDecision,
    SubmissionRerun,
    ValidatorRow,
)

router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 403, 409, 413, 429, 503),
    dependencies=[Depends(strict_query)],
)
NOT_FOUND = error_responses(404)
log = logging.getLogger(__name__)


ForceQuery = Annotated[
    bool,
    Query(
        description=(
            "Activate even when the activation gate refuses: the scripted-expert baseline "
            "exceeds max_expert_baseline, or no baselines were computed."
        )
    ),
]
_GATED = ("active", "benchmarks", "max_expert_baseline")
"""Fields whose change re-runs the activation gate of an active competition."""


def _gate(competition: dict[str, Any], force: bool, who: Any) -> None:
    """Refuse (409) to leave ``competition`` active when a scripted expert would own it."""
    if not competition.get("active"):
        return
    problem = activation_problem(competition)
    if problem is None:
        return
    if not force:
        raise ConflictError(problem)
    log.warning(
        "competition %s active by %s's force despite: %s", competition["id"], who.name, problem
    )


async def _current(conn: ConnDep, competition_id: str) -> dict[str, Any]:
    row = await repo_competitions.get_competition(conn, competition_id)
    if row is None:
        raise NotFoundError(f"no competition {competition_id!r}")
    return row


async def _update(conn: ConnDep, competition_id: str, values: dict[str, Any]) -> dict[str, Any]:
    row = await repo_competitions.update_competition(conn, competition_id, values)
    if row is None:
        raise NotFoundError(f"no competition {competition_id!r}")
    return row


@router.post(
    "/competitions",
    response_model=Competition,
    status_code=status.HTTP_201_CREATED,
)
async def create_competition(
    body: CompetitionIn,
    conn: ConnDep,
    who: AdminDep,
    state: StateDep,
    force: ForceQuery = False,
) -> dict[str, Any]:
    """Create a competition (optionally from a ``preset``); with ``active`` true it must
    pass the activation gate (no baselines exist yet) unless ``force=true``."""
    values = body.model_dump(mode="json")
    if problem := quorum.problem(values, state.settings):
        raise BadRequestError(problem)
    _gate({**values, "baselines": None}, force, who)
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
    force: ForceQuery = False,
) -> dict[str, Any]:
    """Change a competition. New benchmarks drop its baselines (they described the old
    ones); a change to the benchmarks, the limit or ``active`` re-runs the activation gate."""
    values = body.model_dump(exclude_unset=True, mode="json")
    if not values:
        raise BadRequestError("nothing to update")
    current = await _current(conn, competition_id)
    after = {**current, **values}
    if problem := quorum.problem(after, state.settings):
        raise BadRequestError(problem)
    new_benchmarks = "benchmarks" in values and fingerprint_of(values["benchmarks"]) != (
        fingerprint_of(current["benchmarks"])
    )
    if new_benchmarks:
        after["baselines"] = None
    if any(name in values for name in _GATED):
        _gate(after, force, who)
    if new_benchmarks:
        await repo_competitions.set_baselines(conn, competition_id, None)
    return quorum.with_effective(await _update(conn, competition_id, values), state.settings)


@router.post(
    "/competitions/{competition_id}/activate", response_model=Competition, responses=NOT_FOUND
)
async def activate(
    competition_id: CompetitionIdPath,
    conn: ConnDep,
    who: AdminDep,
    state: StateDep,
    force: ForceQuery = False,
) -> dict[str, Any]:
    """Activate; refused (409) by the activation gate unless ``force=true``."""
    _gate({**await _current(conn, competition_id), "active": True}, force, who)
    return quorum.with_effective(
        await _update(conn, competition_id, {"active": True}), state.settings
    )


@router.post(
    "/competitions/{competition_id}/deactivate", response_model=Competition, responses=NOT_FOUND
)
async def deactivate(
    competition_id: CompetitionIdPath, conn: ConnDep, who: AdminDep, state: StateDep
) -> dict[str, Any]:
    return quorum.with_effective(
        await _update(conn, competition_id, {"active": False}), state.settings
    )


@router.put(
    "/competitions/{competition_id}/baselines",
    response_model=Competition,
    responses=error_responses(404),
)
async def put_baselines(
    competition_id: CompetitionIdPath,
    body: Baselines,
    conn: ConnDep,
    who: AdminDep,
    state: StateDep,
) -> dict[str, Any]:
    """Store the reference agents' scores (``kinitro evaluator baselines … --upload``);
    refused (409) when they were computed for other benchmarks than the current ones."""
    current = await _current(conn, competition_id)
    if body.fingerprint != fingerprint_of(current["benchmarks"]):
        raise ConflictError(
            f"these baselines were computed for other benchmarks than {competition_id!r} has "
            "now (fingerprint mismatch): compute them again"
        )
    row = await repo_competitions.set_baselines(conn, competition_id, body.model_dump(mode="json"))
    return quorum.with_effective(row or current, state.settings)


@router.get("/competition-presets", response_model=list[CompetitionPreset])
async def competition_presets(who: AdminDep) -> list[dict[str, Any]]:
    """The presets a competition can start from (``"preset": NAME`` when creating one)."""
    return [{"name": p.name, "title": p.title, **p.competition_fields()} for p in PRESETS.values()]


@router.post("/validators/{hotkey}/reinstate", response_model=ValidatorRow, responses=NOT_FOUND)
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


@router.get("/leader-candidates", response_model=list[LeaderDecision])
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


@router.post(
    "/leader-candidates/{decision_id}/approve", response_model=LeaderDecision, responses=NOT_FOUND
)
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
        LeaderboardUpdatedEvent(
            at=utcnow(),
            competition_id=row["competition_id"],
            leader_submission_id=str(row["submission_id"]),
        ),
    )
    return {**row, "status": "leader"}


@router.post(
    "/leader-candidates/{decision_id}/reject", response_model=LeaderDecision, responses=NOT_FOUND
)
async def reject(
    decision_id: RowIdPath, conn: ConnDep, who: AdminDep, body: DecisionIn | None = None
) -> dict[str, Any]:
    row = await _candidate(conn, decision_id)
    await repo_scoring.set_decision(
        conn, decision_id, "rejected", by=who.name, reason=body.reason if body else None
    )
    return {**row, "status": "rejected"}


@router.post("/jobs/{job_id}/rerun", response_model=JobAction, responses=NOT_FOUND)
async def rerun_job(
    job_id: JobIdPath, conn: ConnDep, state: StateDep, who: AdminDep
) -> dict[str, Any]:
    """Queue the job again: results and assignments are discarded, validators re-assigned."""
    if not await repo_jobs.requeue_job(conn, job_id):
        raise NotFoundError(f"no job {job_id!r}")
    state.scheduler_wake.set()
    return {"job_id": job_id, "state": "queued"}


@router.post("/jobs/{job_id}/cancel", response_model=JobAction, responses=NOT_FOUND)
async def cancel_job(
    job_id: JobIdPath, conn: ConnDep, state: StateDep, who: AdminDep
) -> dict[str, Any]:
    """Cancel a queued or running job: no validator gets it any more, and those running it
    are told to stop (``cancel_job``). A finished job is left as it is."""
    job = await repo_jobs.get_job(conn, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id!r}")
    reason = f"cancelled by {who.name}"
    cancelled = await cancel_jobs_everywhere(conn, [job_id], reason)
    state.scheduler_wake.set()
    return {"job_id": job_id, "state": "cancelled" if cancelled else job["state"]}


@router.post(
    "/submissions/{submission_id}/rerun", response_model=SubmissionRerun, responses=NOT_FOUND
)
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
