"""Storing what validators report: job status, episodes, step samples, results.

Every report is upserted by its natural key inside the caller's transaction and answered
with an :class:`IngestOutcome` — ``stored``, ``duplicate`` (a resend: acked again) — or a
:class:`Verdict` saying why it was not stored (unknown job, runtime refused, not
assigned, suspended, failed a cross-check, held for its episodes; see :mod:`.vetting`).
The socket (:mod:`.validator_ws`) turns those into acks; nothing here knows the wire.

Side effects of a new report, in the same transaction: the assignment's lease and state,
a settled job and submission, and the realtime event (:mod:`.events`, delivered on
commit). Free text from a validator is made storable (:func:`storable`) and sealed
(:mod:`.embargo`) before it reaches an event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from pydantic import TypeAdapter

from kinitro.backend import embargo, events
from kinitro.backend.coverage import apply_coverage_rule
from kinitro.backend.db import repo_ingest, repo_jobs, repo_rounds
from kinitro.backend.db.common import utcnow
from kinitro.backend.vetting import IngestOutcome, Verdict, vet
from kinitro.protocol.common import ErrorCode, JobState
from kinitro.protocol.realtime import (
    EpisodeCompletedEvent,
    EvaluationCompletedEvent,
    JobStatusEvent,
)
from kinitro.protocol.validator_ws import Episode, EpisodeSteps, EvalResult, JobStatus, StepSample

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from kinitro.backend.runtimes import RuntimePolicy
    from kinitro.backend.settings import Settings

__all__ = [
    "IngestOutcome",
    "Ingested",
    "Report",
    "Verdict",
    "ingest",
    "ingest_batch",
    "ingest_steps",
    "storable",
]

Report = JobStatus | EvalResult | Episode | EpisodeSteps
"""Messages a validator sends that are stored (upserted by natural key) and acked."""

Ingested = IngestOutcome | Verdict
"""Stored (or already stored), or why not."""

_SAMPLES: TypeAdapter[list[StepSample]] = TypeAdapter(list[StepSample])


async def ingest_batch(
    conn: AsyncConnection,
    hotkey: str,
    batch: list[tuple[Report, str | bytes]],
    settings: Settings,
    policy: RuntimePolicy,
) -> list[Ingested]:
    """Store a batch of reports (each with its frame) in one transaction: an outcome each,
    in order. Results of a runtime ``policy`` refuses are not stored."""
    outcomes: dict[int, Ingested] = {}
    for i, (message, _) in enumerate(batch):
        if isinstance(message, EpisodeSteps):
            continue
        problem = (
            policy.problem(message.runtime)
            if isinstance(message, EvalResult) and message.runtime is not None
            else None
        )
        if problem:
            outcomes[i] = Verdict(
                IngestOutcome.REFUSED_RUNTIME,
                ErrorCode.UNSUPPORTED_VERSION,
                f"result of job {message.job_id}: evaluator runtime refused: {problem}",
            )
        else:
            outcomes[i] = await ingest(conn, hotkey, message, settings)
    # the bulk of the traffic, all in one statement
    steps = [(i, m, raw) for i, (m, raw) in enumerate(batch) if isinstance(m, EpisodeSteps)]
    if steps:
        stored = await ingest_steps(conn, hotkey, [(m, raw) for _, m, raw in steps], settings)
        outcomes.update(zip((i for i, _, _ in steps), stored, strict=True))
    return [outcomes[i] for i in range(len(batch))]


async def ingest_steps(
    conn: AsyncConnection,
    hotkey: str,
    batches: list[tuple[EpisodeSteps, str | bytes]],
    settings: Settings,
) -> list[Ingested]:
    """Store step batches in one statement (the hot path of ingestion): an outcome each,
    as :func:`ingest`; who sends them is vetted once per job. Each batch's samples are
    stored verbatim from its frame (already validated by the parser), so they are never
    serialised again."""
    verdicts: dict[str, Verdict | None] = {}
    for message, _ in batches:
        if message.job_id not in verdicts:
            job = await repo_jobs.get_job(conn, message.job_id)
            if job is None:
                verdicts[message.job_id] = _unknown_job(message.job_id)
                continue
            assignment = await repo_jobs.assignment_for(conn, message.job_id, hotkey)
            verdicts[message.job_id] = await vet(conn, settings, hotkey, job, assignment, message)
    rows = [
        dict(
            job_id=m.job_id,
            validator_hotkey=hotkey,
            episode_index=m.episode_index,
            batch_index=m.batch_index,
            first_step=m.samples[0].step if m.samples else 0,
            n_samples=len(m.samples),
            **_samples_source(m, raw.decode() if isinstance(raw, bytes) else raw),
        )
        for m, raw in batches
        if verdicts[m.job_id] is None
    ]
    new = await repo_ingest.add_step_batches(conn, rows) if rows else set()
    outcomes: list[Ingested] = []
    for m, _ in batches:
        verdict = verdicts[m.job_id]
        key = (m.job_id, m.episode_index, m.batch_index)
        if verdict is not None:  # the job's verdict, answering this message
            outcomes.append(verdict)
        elif key in new:
            new.discard(key)  # a batch sent twice in one go is stored once
            outcomes.append(IngestOutcome.STORED)
        else:
            outcomes.append(IngestOutcome.DUPLICATE)
    return outcomes


def _unknown_job(job_id: str) -> Verdict:
    return Verdict(IngestOutcome.UNKNOWN_JOB, ErrorCode.UNKNOWN_JOB, f"no job {job_id}")


def _samples_source(message: EpisodeSteps, frame: str) -> dict[str, str]:
    """Where PostgreSQL takes a batch's samples from: the frame itself (its ``samples``
    member, verbatim), unless the frame has ``\\u`` escapes — PostgreSQL's JSON functions
    refuse some (``\\u0000``, lone surrogates) that plain JSON storage accepts — then the
    samples serialised again."""
    if "\\u" in frame:
        return {"samples_json": _SAMPLES.dump_json(message.samples).decode()}
    return {"frame": frame}


async def ingest(
    conn: AsyncConnection,
    hotkey: str,
    message: JobStatus | EvalResult | Episode,
    settings: Settings,
) -> Ingested:
    """Store one validator report: :attr:`IngestOutcome.STORED` or ``DUPLICATE``, or the
    :class:`Verdict` of a report that may not be stored (unknown job, not assigned,
    suspended, failed a cross-check, result held for its episodes)."""
    job = await repo_jobs.get_job(conn, message.job_id)
    if job is None:
        return _unknown_job(message.job_id)
    assignment = await repo_jobs.assignment_for(conn, message.job_id, hotkey)
    verdict = await vet(conn, settings, hotkey, job, assignment, message)
    if verdict is not None:
        return verdict
    assert assignment is not None
    if isinstance(message, EvalResult):
        message = apply_coverage_rule(message, job, settings.min_scored_share)
    match message:
        case JobStatus():
            new = await _job_status(conn, hotkey, message, job, settings)
        case EvalResult() if (
            message.state is not JobState.COMPLETED
            and message.failure_cause is not None
            and message.failure_cause.is_retryable
            and assignment["attempt"] < settings.max_attempts
            and assignment["state"] in repo_jobs.ACTIVE
        ):
            # an infrastructure fault is never scored: offer the job again (to another
            # validator first), up to max_attempts
            await repo_jobs.retry_assignment(conn, message.job_id, hotkey)
            await events.emit(
                conn,
                EvaluationCompletedEvent(
                    **_about(job, message.job_id, hotkey),
                    state=message.state,
                    job_state=None,
                ),
            )
            return IngestOutcome.STORED
        case EvalResult():
            new = await _result(conn, hotkey, message, job)
        case Episode() if await repo_ingest.has_result(conn, message.job_id, hotkey):
            new = False  # the job's report is settled: its episodes are frozen
        case Episode():
            new = await _episode(conn, hotkey, message, job)
    return IngestOutcome.STORED if new else IngestOutcome.DUPLICATE


def _about(job: dict[str, Any], job_id: str, hotkey: str) -> dict[str, Any]:
    """The fields every job event of a validator's report carries."""
    return {
        "at": utcnow(),
        "job_id": job_id,
        "validator_hotkey": hotkey,
        "competition_id": job["competition_id"],
        "miner_hotkey": job["miner_hotkey"],
        "submission_id": str(job["submission_id"]),
    }


async def _job_status(
    conn: AsyncConnection,
    hotkey: str,
    message: JobStatus,
    job: dict[str, Any],
    settings: Settings,
) -> bool:
    new = await repo_ingest.add_status(
        conn,
        dict(
            job_id=message.job_id,
            validator_hotkey=hotkey,
            seq=message.seq,
            state=message.state.value,
            detail=storable(message.detail),
            episodes_done=message.episodes_done,
            episodes_total=message.episodes_total,
            at=message.at,
        ),
    )
    if not new:
        return False
    running = message.state in (JobState.STARTING, JobState.RUNNING)
    await repo_jobs.touch_assignment(
        conn,
        message.job_id,
        hotkey,
        state="running" if running else None,
        lease_s=settings.lease_s,
    )
    detail = storable(message.detail)
    if detail is not None:  # the job's error, which can quote the agent
        _, until = await repo_rounds.seal_of_job(conn, message.job_id)
        detail = embargo.sealed_text(detail, None, until)
    await events.emit(
        conn,
        JobStatusEvent(
            **_about(job, message.job_id, hotkey),
            state=message.state,
            episodes_done=message.episodes_done,
            episodes_total=message.episodes_total,
            detail=detail,
        ),
    )
    return True


async def _result(
    conn: AsyncConnection, hotkey: str, message: EvalResult, job: dict[str, Any]
) -> bool:
    overall = message.metrics.overall if message.metrics else None
    cause = message.failure_cause.value if message.failure_cause else None
    new = await repo_ingest.add_result(
        conn,
        dict(
            job_id=message.job_id,
            validator_hotkey=hotkey,
            state=message.state.value,
            metrics=message.metrics.model_dump(mode="json") if message.metrics else None,
            success_rate=overall.success_rate if overall else None,
            episodes=overall.scored_episodes if overall else None,
            successes=overall.successes if overall else None,
            error=storable(message.error) or cause,
            failure_cause=cause,
            started_at=message.started_at,
            finished_at=message.finished_at,
            evaluator_version=storable(message.evaluator_version),
            runtime=message.runtime.model_dump(mode="json") if message.runtime else None,
            runtime_key=message.runtime.key if message.runtime else None,
        ),
    )
    if not new:
        return False
    done = "completed" if message.state is JobState.COMPLETED else "failed"
    await repo_jobs.finish_assignment(conn, message.job_id, hotkey, done)
    settled = await repo_jobs.settle_job(conn, message.job_id)
    if settled is not None:
        await repo_jobs.settle_submission(conn, job["submission_id"])
    await events.emit(
        conn,
        EvaluationCompletedEvent(
            **_about(job, message.job_id, hotkey),
            state=message.state,
            success_rate=overall.success_rate if overall else None,
            job_state=JobState(settled) if settled is not None else None,
        ),
    )
    return True


async def _episode(
    conn: AsyncConnection, hotkey: str, message: Episode, job: dict[str, Any]
) -> bool:
    new = await repo_ingest.put_episode(
        conn,
        dict(
            job_id=message.job_id,
            validator_hotkey=hotkey,
            episode_index=message.episode_index,
            task=message.task,
            task_episode=message.task_episode,
            seed=message.seed,
            success=message.success,
            total_reward=message.total_reward,
            steps=message.steps,
            steps_to_success=message.steps_to_success,
            terminated=message.terminated,
            truncated=message.truncated,
            failure_cause=message.failure_cause.value if message.failure_cause else None,
            failure_detail=storable(message.failure_detail),
            actions_ref=storable(message.actions_ref),
            action_fingerprint=message.action_fingerprint,
            media_refs=[storable(ref) for ref in message.media_refs],
            duration_s=message.duration_s,
        ),
    )
    if not new:
        return False
    _, until = await repo_rounds.seal_of_job(conn, message.job_id)
    await events.emit(
        conn,
        EpisodeCompletedEvent(
            **_about(job, message.job_id, hotkey),
            episode_index=message.episode_index,
            task=message.task,
            success=message.success,
            total_reward=message.total_reward,
            steps=message.steps,
            failure_cause=message.failure_cause,
            media_refs=list(message.media_refs),
            sealed_until=until,
        ),
    )
    return True


@overload
def storable(text: str) -> str: ...
@overload
def storable(text: None) -> None: ...
def storable(text: str | None) -> str | None:
    """Free text from a validator (often an agent's own crash output, so miner-controlled)
    as PostgreSQL text can hold it: NUL characters become U+FFFD. Refusing the message
    instead would block the validator's outbox on it forever."""
    return None if text is None else text.replace("\x00", "\ufffd")
