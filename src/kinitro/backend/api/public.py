"""Public read-only REST routes (``/api/v1``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from kinitro.backend import embargo, explain, quorum, standing
from kinitro.backend.api.schemas import SEALED_RESPONSE, error_responses
from kinitro.backend.db import (
    repo_audits,
    repo_competitions,
    repo_ingest,
    repo_jobs,
    repo_rounds,
    repo_scoring,
    repo_standing,
    repo_submissions,
    repo_validators,
)
from kinitro.backend.deps import (
    CompetitionIdPath,
    CompetitionIdQuery,
    ConnDep,
    HotkeyQuery,
    JobIdPath,
    JobIdQuery,
    PageDep,
    RoundIdPath,
    RoundIdQuery,
    RowIdPath,
    RowIdQuery,
    StateDep,
    TaskQuery,
    strict_query,
)
from kinitro.backend.errors import NotFoundError
from kinitro.backend.stats import collect_stats
from kinitro.protocol.views import (
    Audit,
    Competition,
    Episode,
    Job,
    JobDetail,
    Leaderboard,
    ListedResult,
    Page,
    Round,
    Stats,
    StepBatch,
    Strike,
    Submission,
    SubmissionDetail,
    Validator,
    WeightSet,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from kinitro.backend.state import BackendState

router = APIRouter(
    prefix="/api/v1",
    tags=["public"],
    responses=error_responses(400, 429, 503),
    dependencies=[Depends(strict_query)],
)
NOT_FOUND = error_responses(404)

SubmissionStatus = Literal["pending", "rejected", "scheduled", "evaluated", "superseded"]
# the backend stores queued/running/completed/failed/cancelled; any protocol state filters
JobStateName = Literal[
    "queued", "starting", "running", "completed", "failed", "timed_out", "cancelled"
]


def _page(items: list[Any], total: int, p: PageDep) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": p.limit, "offset": p.offset}


@router.get("/competitions", response_model=list[Competition])
async def list_competitions(
    conn: ConnDep, state: StateDep, active: bool | None = None
) -> list[dict[str, Any]]:
    """Competitions with their current leader and effective quorum."""
    out = []
    for c in await repo_competitions.list_competitions(conn, active=active):
        leader = await repo_scoring.current_leader(conn, c["id"])
        out.append({**quorum.with_effective(c, state.settings), "leader": leader})
    return out


@router.get("/competitions/{competition_id}", response_model=Competition, responses=NOT_FOUND)
async def get_competition(
    competition_id: CompetitionIdPath, conn: ConnDep, state: StateDep
) -> dict[str, Any]:
    c = await repo_competitions.get_competition(conn, competition_id)
    if c is None:
        raise NotFoundError(f"no competition {competition_id!r}")
    leader = await repo_scoring.current_leader(conn, competition_id)
    return {**quorum.with_effective(c, state.settings), "leader": leader}


@router.get(
    "/competitions/{competition_id}/leaderboard", response_model=Leaderboard, responses=NOT_FOUND
)
async def leaderboard(
    competition_id: CompetitionIdPath, conn: ConnDep, state: StateDep
) -> dict[str, Any]:
    """Ranked scores; a challenger's row carries ``vs_leader``, its paired test against the
    leader (``docs/backend.md``, "Leaders and challengers"); every row but the leader's
    says in ``reason`` why it is not eligible or not leading and in ``to_lead`` what it
    would take (:mod:`kinitro.backend.explain`)."""
    c = await repo_competitions.get_competition(conn, competition_id)
    if c is None:
        raise NotFoundError(f"no competition {competition_id!r}")
    rows = quorum.annotate_board(await repo_scoring.leaderboard(conn, competition_id))
    leader = await repo_scoring.current_leader(conn, competition_id)
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    explain.explained_board(rows, explain.Rules.of(c, state.settings), leader)
    return {
        "competition_id": competition_id,
        "leader": leader,
        "min_episodes": c["min_episodes"],
        "min_leader_score": c["min_leader_score"],
        "approval_mode": c["approval_mode"],
        "pending_candidates": await repo_scoring.candidates(conn, competition_id=competition_id),
        "rows": rows,
    }


@router.get("/submissions", response_model=Page[Submission])
async def list_submissions(
    conn: ConnDep,
    p: PageDep,
    competition_id: CompetitionIdQuery = None,
    miner_hotkey: HotkeyQuery = None,
    status: SubmissionStatus | None = None,
) -> dict[str, Any]:
    items, total = await repo_submissions.list_submissions(
        conn,
        competition_id=competition_id,
        miner_hotkey=miner_hotkey,
        status=status,
        limit=p.limit,
        offset=p.offset,
    )
    return _page(items, total, p)


@router.get("/submissions/{submission_id}", response_model=SubmissionDetail, responses=NOT_FOUND)
async def get_submission(
    submission_id: RowIdPath, conn: ConnDep, state: StateDep
) -> dict[str, Any]:
    """A submission with its jobs, per-validator results and aggregated score (a result's
    ``error`` reads as its cause until its round's reveal); the score carries the
    leaderboard's ``rank``, ``reason`` and ``to_lead`` (:mod:`kinitro.backend.explain`)."""
    sub = await repo_submissions.get_submission(conn, submission_id)
    if sub is None:
        raise NotFoundError(f"no submission {submission_id}")
    jobs = await repo_jobs.jobs_of_submission(conn, submission_id)
    found = await repo_ingest.results_of_jobs(conn, [j["id"] for j in jobs])
    results = await embargo.results_view(conn, found)
    return {
        **sub,
        "jobs": jobs,
        "results": results,
        "score": await _explained_score(conn, state, sub),
    }


async def _explained_score(
    conn: AsyncConnection, state: BackendState, sub: dict[str, Any]
) -> dict[str, Any] | None:
    """The submission's score with its leaderboard ``rank``, ``reason`` and ``to_lead``."""
    score = await repo_scoring.score_of(conn, sub["id"])
    c = await repo_competitions.get_competition(conn, sub["competition_id"] or "")
    if score is None or c is None:
        return score
    rows = quorum.annotate_board(await repo_scoring.leaderboard(conn, c["id"]))
    leader = await repo_scoring.current_leader(conn, c["id"])
    explain.explained_board(rows, explain.Rules.of(c, state.settings), leader)
    for rank, row in enumerate(rows, start=1):
        if row["submission_id"] == sub["id"]:
            score.update(rank=rank, reason=row["reason"], to_lead=row["to_lead"])
    return score


@router.get("/jobs", response_model=Page[Job])
async def list_jobs(
    conn: ConnDep,
    p: PageDep,
    submission_id: RowIdQuery = None,
    competition_id: CompetitionIdQuery = None,
    state: JobStateName | None = None,
    validator_hotkey: HotkeyQuery = None,
) -> dict[str, Any]:
    items, total = await repo_jobs.list_jobs(
        conn,
        submission_id=submission_id,
        competition_id=competition_id,
        state=state,
        validator_hotkey=validator_hotkey,
        limit=p.limit,
        offset=p.offset,
    )
    return _page(items, total, p)


@router.get("/jobs/{job_id}", response_model=JobDetail, responses=NOT_FOUND)
async def get_job(job_id: JobIdPath, conn: ConnDep) -> dict[str, Any]:
    """A job with its assignments, per-validator status history and results; until its
    round's reveal, a status ``detail`` is sealed and a result's ``error`` reads as its
    cause (both can quote the agent)."""
    job = await repo_jobs.get_job(conn, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id!r}")
    _, until = await repo_rounds.seal_of_job(conn, job_id)
    history = await repo_jobs.status_history(conn, job_id)
    results = await repo_ingest.results_of_jobs(conn, [job_id])
    return {
        **job,
        "sealed_until": until,
        "assignments": await repo_jobs.assignments_of(conn, [job_id]),
        "status_history": [embargo.status_view(h, until) for h in history],
        "results": [embargo.result_view(r, until) for r in results],
    }


@router.get("/results", response_model=Page[ListedResult])
async def list_results(
    conn: ConnDep,
    p: PageDep,
    job_id: JobIdQuery = None,
    submission_id: RowIdQuery = None,
    validator_hotkey: HotkeyQuery = None,
) -> dict[str, Any]:
    items, total = await repo_ingest.list_results(
        conn,
        job_id=job_id,
        submission_id=submission_id,
        validator_hotkey=validator_hotkey,
        limit=p.limit,
        offset=p.offset,
    )
    return _page(await embargo.results_view(conn, items), total, p)


@router.get("/episodes", response_model=Page[Episode])
async def list_episodes(
    conn: ConnDep,
    p: PageDep,
    job_id: JobIdQuery = None,
    submission_id: RowIdQuery = None,
    validator_hotkey: HotkeyQuery = None,
    task: TaskQuery = None,
    success: bool | None = None,
    round_id: RoundIdQuery = None,
) -> dict[str, Any]:
    """Episode summaries with the links of their action log and media. Before their
    round's reveal, ``seed`` is null, ``failure_detail`` reads as the cause only and
    ``sealed_until`` says until when (aggregates are live; the links answer 403 until
    then)."""
    items, total = await repo_ingest.list_episodes(
        conn,
        job_id=job_id,
        submission_id=submission_id,
        validator_hotkey=validator_hotkey,
        task=task,
        success=success,
        round_id=round_id,
        limit=p.limit,
        offset=p.offset,
    )
    return _page([embargo.episode_view(row) for row in items], total, p)


@router.get("/episodes/{episode_id}", response_model=Episode, responses=NOT_FOUND)
async def get_episode(episode_id: RowIdPath, conn: ConnDep) -> dict[str, Any]:
    """Episode summary with links to its media and action log (which answer 403 with
    ``sealed_until`` before the round's reveal; ``seed`` and ``failure_detail`` are sealed
    until then too)."""
    ep = await repo_ingest.get_episode(conn, episode_id)
    if ep is None:
        raise NotFoundError(f"no episode {episode_id}")
    return embargo.episode_view(ep)


@router.get(
    "/episodes/{episode_id}/steps",
    response_model=Page[StepBatch],
    responses={**NOT_FOUND, **SEALED_RESPONSE},
)
async def episode_steps(episode_id: RowIdPath, conn: ConnDep, p: PageDep) -> dict[str, Any]:
    """Logged step samples of an episode, one item per batch, in order; 403 (sealed) until
    the round's reveal."""
    ep = await repo_ingest.get_episode(conn, episode_id)
    if ep is None:
        raise NotFoundError(f"no episode {episode_id}")
    embargo.require_open(ep, f"the step samples of episode {episode_id}")
    items, total = await repo_ingest.step_batches(
        conn,
        job_id=ep["job_id"],
        validator_hotkey=ep["validator_hotkey"],
        episode_index=ep["episode_index"],
        limit=p.limit,
        offset=p.offset,
    )
    return _page(items, total, p)


@router.get("/validators", response_model=list[Validator])
async def list_validators(
    conn: ConnDep,
    connected: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many")] = 500,
) -> list[dict[str, Any]]:
    """Validators seen by this backend (a list, not paginated: there are few), with their
    standing: ``strikes`` (all), ``counting_strikes`` (towards a suspension),
    ``suspended_until``, ``disagreement`` (mean distance of its success rates from their
    job's median) and audit figures."""
    found = (await repo_validators.list_validators(conn, connected=connected))[:limit]
    return await standing.with_standing(conn, found)


@router.get("/validators/strikes", response_model=Page[Strike])
async def validator_strikes(
    conn: ConnDep, p: PageDep, validator_hotkey: HotkeyQuery = None
) -> dict[str, Any]:
    """Strikes, newest first: the job, the ``reason`` (StrikeReason) and its detail."""
    items, total = await repo_standing.list_strikes(
        conn, hotkey=validator_hotkey, limit=p.limit, offset=p.offset
    )
    return _page(items, total, p)


@router.get("/validators/audits", response_model=Page[Audit])
async def validator_audits(
    conn: ConnDep,
    p: PageDep,
    validator_hotkey: HotkeyQuery = None,
    state: Literal["pending", "passed", "failed", "skipped"] | None = None,
) -> dict[str, Any]:
    """Replay audits (after each round's reveal), newest first: the job and episode,
    ``state``, what the validator ``reported`` and what the replay under its derived seed
    gave (``replayed``, with the seed and the log header's own claims), ``detail``."""
    items, total = await repo_audits.list_audits(
        conn, hotkey=validator_hotkey, state=state, limit=p.limit, offset=p.offset
    )
    return _page(items, total, p)


@router.get("/stats", response_model=Stats)
async def stats(conn: ConnDep) -> dict[str, Any]:
    return await collect_stats(conn)


@router.get("/weights/latest", response_model=WeightSet, responses=NOT_FOUND)
async def latest_weights(conn: ConnDep) -> dict[str, Any]:
    w = await repo_scoring.latest_weights(conn)
    if w is None:
        raise NotFoundError("no weights computed yet")
    return w


@router.get("/weights", response_model=Page[WeightSet])
async def weights_history(conn: ConnDep, p: PageDep) -> dict[str, Any]:
    items, total = await repo_scoring.weights_history(conn, limit=p.limit, offset=p.offset)
    return _page(items, total, p)


@router.get("/rounds", response_model=Page[Round])
async def rounds(
    conn: ConnDep,
    p: PageDep,
    competition_id: CompetitionIdQuery = None,
) -> dict[str, Any]:
    """Evaluation rounds, newest first: the chain ``commitment`` (and its block) from the
    start, the ``secret`` once revealed after ``ends_at`` (``sealed_until`` until then)."""
    items, total = await repo_rounds.list_rounds(
        conn, competition_id=competition_id, limit=p.limit, offset=p.offset
    )
    return _page([embargo.round_view(row) for row in items], total, p)


@router.get("/rounds/{round_id}", response_model=Round, responses=NOT_FOUND)
async def get_round(round_id: RoundIdPath, conn: ConnDep) -> dict[str, Any]:
    """One round: its commitment and, after the reveal, its secret (check both with
    ``kinitro round verify``)."""
    rnd = await repo_rounds.get_round(conn, round_id)
    if rnd is None:
        raise NotFoundError(f"no round {round_id!r}")
    return embargo.round_view(rnd)
