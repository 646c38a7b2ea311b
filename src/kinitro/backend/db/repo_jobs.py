"""Jobs and what becomes of an assignment once a validator holds it: acks, refusals,
lease touches while it runs, results held, settled, rejected or discarded, revocations;
and the job reads of the API. Creating jobs and assigning them to validators is in
:mod:`.repo_scheduling`; rounds are in :mod:`.repo_rounds`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import page, rows, table, utcnow
from kinitro.backend.db.models import (
    Episode,
    EpisodeStepBatch,
    Job,
    JobAssignment,
    JobStatusEvent,
    Result,
    Submission,
    Validator,
)
from kinitro.backend.db.repo_validators import in_good_standing

J = table(Job)
A = table(JobAssignment)
S = table(Submission)
H = table(JobStatusEvent)
V = table(Validator)
RES = table(Result)
E = table(Episode)
ST = table(EpisodeStepBatch)

ACTIVE = ("assigned", "acked", "running")
DONE = ("completed", "failed")
LIVE_JOB = ("queued", "running")
PUBLIC = list(J.c)


# ------------------------------------------------------------------ jobs


async def create_rerun_job(conn: AsyncConnection, values: dict[str, Any]) -> str:
    """Insert an agent re-run audit job (``audit_of_*`` set; see ``backend.reruns``)."""
    return str((await conn.execute(insert(J).values(**values).returning(J.c.id))).scalar())


async def live_jobs_of_submissions(conn: AsyncConnection, submission_ids: list[int]) -> list[str]:
    """Ids of the submissions' jobs that are still queued or running."""
    if not submission_ids:
        return []
    stmt = select(J.c.id).where(J.c.submission_id.in_(submission_ids), J.c.state.in_(LIVE_JOB))
    return list((await conn.execute(stmt.order_by(J.c.id))).scalars())


async def lock_assignments(conn: AsyncConnection, job_ids: list[str]) -> None:
    """Lock the assignments of ``job_ids`` before their jobs' rows.

    Every transaction that writes both takes an assignment first and the job second (an
    ack, an ingested result and its settling): one that locked a job and then waited for an
    assignment would deadlock with an ack in flight, and PostgreSQL would abort one of the
    two (an operator's cancel answered 409 for a job a validator had just acked)."""
    await conn.execute(
        select(A.c.id).where(A.c.job_id.in_(job_ids)).order_by(A.c.id).with_for_update()
    )


async def cancel_jobs(conn: AsyncConnection, job_ids: list[str]) -> list[str]:
    """Cancel the live ones of ``job_ids`` and their unfinished assignments; returns them."""
    if not job_ids:
        return []
    await lock_assignments(conn, job_ids)
    now = utcnow()
    stmt = (
        update(J)
        .where(J.c.id.in_(job_ids), J.c.state.in_(LIVE_JOB))
        .values(state="cancelled", updated_at=now, finished_at=now)
        .returning(J.c.id)
    )
    ids = list((await conn.execute(stmt)).scalars())
    if ids:
        await conn.execute(
            update(A)
            .where(A.c.job_id.in_(ids), A.c.state.in_(ACTIVE))
            .values(state="cancelled", finished_at=now)
        )
    return ids


async def requeue_job(conn: AsyncConnection, job_id: str) -> bool:
    """Admin rerun: forget the job's results and telemetry and queue it again.

    Assignments become ``expired``, so each validator is offered the job again as a new
    attempt (validators re-run a finished job only for a newer attempt).
    """
    await lock_assignments(conn, [job_id])
    now = utcnow()
    found = (
        await conn.execute(
            update(J)
            .where(J.c.id == job_id)
            .values(state="queued", updated_at=now, finished_at=None)
            .returning(J.c.id)
        )
    ).scalar()
    if not found:
        return False
    for telemetry in (RES, E, ST, H):
        await conn.execute(telemetry.delete().where(telemetry.c.job_id == job_id))
    await conn.execute(
        update(A).where(A.c.job_id == job_id, A.c.state != "refused").values(state="expired")
    )
    return True


async def retry_assignment(conn: AsyncConnection, job_id: str, hotkey: str) -> int:
    """An infrastructure failure: free the slot so the job is offered again; returns the
    attempt that failed."""
    stmt = (
        update(A)
        .where(A.c.job_id == job_id, A.c.validator_hotkey == hotkey)
        .values(state="expired")
        .returning(A.c.attempt)
    )
    return int((await conn.execute(stmt)).scalar() or 0)


async def jobs_of_submission(conn: AsyncConnection, submission_id: int) -> list[dict[str, Any]]:
    return rows(await conn.execute(select(*PUBLIC).where(J.c.submission_id == submission_id)))


async def get_job(conn: AsyncConnection, job_id: str) -> dict[str, Any] | None:
    stmt = select(*PUBLIC, S.c.miner_hotkey, S.c.miner_uid).join(S, S.c.id == J.c.submission_id)
    row = (await conn.execute(stmt.where(J.c.id == job_id))).mappings().first()
    return dict(row) if row else None


async def list_jobs(
    conn: AsyncConnection,
    *,
    submission_id: int | None = None,
    competition_id: str | None = None,
    state: str | None = None,
    validator_hotkey: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    conds = []
    if submission_id is not None:
        conds.append(J.c.submission_id == submission_id)
    if competition_id is not None:
        conds.append(J.c.competition_id == competition_id)
    if state is not None:
        conds.append(J.c.state == state)
    if validator_hotkey is not None:
        conds.append(J.c.id.in_(select(A.c.job_id).where(A.c.validator_hotkey == validator_hotkey)))
    q = (
        select(*PUBLIC, S.c.miner_hotkey, S.c.miner_uid)
        .join(S, S.c.id == J.c.submission_id)
        .where(and_(True, *conds))
    )
    return await page(conn, q, limit=limit, offset=offset, order=[J.c.created_at.desc(), J.c.id])


async def assignments_of(conn: AsyncConnection, job_ids: list[str]) -> list[dict[str, Any]]:
    if not job_ids:
        return []
    stmt = select(A).where(A.c.job_id.in_(job_ids)).order_by(A.c.id)
    return rows(await conn.execute(stmt))


async def status_history(conn: AsyncConnection, job_id: str) -> list[dict[str, Any]]:
    stmt = select(H).where(H.c.job_id == job_id).order_by(H.c.validator_hotkey, H.c.seq)
    return rows(await conn.execute(stmt))


async def counts_by_state(conn: AsyncConnection) -> dict[str, int]:
    stmt = select(J.c.state, func.count()).group_by(J.c.state)
    return {r[0]: int(r[1]) for r in (await conn.execute(stmt)).all()}


# ------------------------------------------------------------------ assignments


async def pending_for_validator(conn: AsyncConnection, hotkey: str) -> list[dict[str, Any]]:
    """Every unacknowledged assignment of ``hotkey`` with what an eval_job needs."""
    stmt = (
        select(
            A.c.message_id,
            A.c.attempt,
            A.c.sent_at,
            J.c.id.label("job_id"),
            J.c.submission_id,
            J.c.competition_id,
            J.c.benchmark,
            J.c.round_id,
            J.c.audit_of_validator,
            J.c.deadline_s,
            J.c.created_at,
            S.c.miner_hotkey,
            S.c.miner_uid,
            S.c.artifact_registry,
            S.c.artifact_repo,
            S.c.artifact_revision,
            S.c.artifact_sha256,
            S.c.artifact_size,
        )
        .join(J, J.c.id == A.c.job_id)
        .join(S, S.c.id == J.c.submission_id)
        .where(A.c.validator_hotkey == hotkey, A.c.state == "assigned")
        .order_by(A.c.id)
    )
    return rows(await conn.execute(stmt))


async def mark_sent(conn: AsyncConnection, message_ids: list[str]) -> None:
    if message_ids:
        await conn.execute(
            update(A).where(A.c.message_id.in_(message_ids)).values(sent_at=utcnow())
        )


async def ack_assignment(
    conn: AsyncConnection, message_id: str, hotkey: str, lease_s: float
) -> str | None:
    """Mark the eval_job ``message_id`` acked by ``hotkey``; returns its job id."""
    now = utcnow()
    row = (
        await conn.execute(
            select(A.c.job_id, A.c.state).where(
                A.c.message_id == message_id, A.c.validator_hotkey == hotkey
            )
        )
    ).first()
    if row is None:
        return None
    acked = (
        await conn.execute(
            update(A)
            # the state again: a cancel or an expiry may have come between the read and here
            .where(A.c.message_id == message_id, A.c.state == "assigned")
            .values(state="acked", acked_at=now, lease_expires_at=now + timedelta(seconds=lease_s))
            .returning(A.c.id)
        )
    ).first()
    if acked is not None:
        await conn.execute(
            update(J)
            .where(J.c.id == row.job_id, J.c.state == "queued")
            .values(state="running", updated_at=now)
        )
    return str(row.job_id)


async def assignment_for(conn: AsyncConnection, job_id: str, hotkey: str) -> dict[str, Any] | None:
    stmt = select(A).where(A.c.job_id == job_id, A.c.validator_hotkey == hotkey)
    row = (await conn.execute(stmt)).mappings().first()
    return dict(row) if row else None


async def touch_assignment(
    conn: AsyncConnection, job_id: str, hotkey: str, *, state: str | None, lease_s: float
) -> None:
    """Progress from the validator: extend the lease, move acked → running."""
    now = utcnow()
    values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=lease_s)}
    if state is not None:
        values["state"] = state
    await conn.execute(
        update(A)
        .where(A.c.job_id == job_id, A.c.validator_hotkey == hotkey, A.c.state.in_(ACTIVE))
        .values(**values)
    )


async def finish_assignment(conn: AsyncConnection, job_id: str, hotkey: str, state: str) -> None:
    now = utcnow()
    await conn.execute(
        update(A)
        .where(
            A.c.job_id == job_id,
            A.c.validator_hotkey == hotkey,
            A.c.state.in_((*ACTIVE, "expired")),
        )
        .values(state=state, finished_at=now, acked_at=func.coalesce(A.c.acked_at, now))
    )


async def settle_job(conn: AsyncConnection, job_id: str) -> str | None:
    """Set the job's state from its results; returns the new state when it changed.

    The job's row is locked first (``FOR NO KEY UPDATE``, which the result rows' foreign
    key locks do not conflict with): two validators' results ingested at the same moment
    settle one after the other, so the second counts the first's (each alone would see
    only its own result and leave the job running for ever)."""
    job = (
        await conn.execute(
            select(J.c.state, J.c.replication)
            .where(J.c.id == job_id)
            .with_for_update(key_share=True)
        )
    ).first()
    if job is None or job.state not in LIVE_JOB:
        return None
    standing = RES.join(V, V.c.hotkey == RES.c.validator_hotkey)
    done = await conn.scalar(
        select(func.count()).select_from(standing).where(RES.c.job_id == job_id, in_good_standing())
    )
    if int(done or 0) < job.replication:
        return None
    completed = await conn.scalar(
        select(func.count())
        .select_from(RES)
        .where(RES.c.job_id == job_id, RES.c.state == "completed")
    )
    state = "completed" if int(completed or 0) > 0 else "failed"
    now = utcnow()
    await conn.execute(
        update(J).where(J.c.id == job_id).values(state=state, updated_at=now, finished_at=now)
    )
    return state


async def live_jobs(conn: AsyncConnection, limit: int = 100) -> list[dict[str, Any]]:
    stmt = (
        select(*PUBLIC, S.c.miner_hotkey)
        .join(S, S.c.id == J.c.submission_id)
        .where(J.c.state.in_(LIVE_JOB))
        .order_by(J.c.created_at.desc())
        .limit(limit)
    )
    return rows(await conn.execute(stmt))


async def settle_submission(conn: AsyncConnection, submission_id: int) -> bool:
    """Mark a scheduled submission evaluated once none of its jobs is live."""
    live = await conn.scalar(
        select(func.count())
        .select_from(J)
        .where(J.c.submission_id == submission_id, J.c.state.in_(LIVE_JOB))
    )
    if int(live or 0) > 0:
        return False
    result = await conn.execute(
        update(S)
        .where(S.c.id == submission_id, S.c.status == "scheduled")
        .values(status="evaluated", updated_at=utcnow())
        .returning(S.c.id)
    )
    return result.scalar() is not None


async def hold_result(conn: AsyncConnection, job_id: str, hotkey: str) -> datetime:
    """When the validator's completed result first came before all its episodes."""
    now = utcnow()
    stmt = (
        update(A)
        .where(A.c.job_id == job_id, A.c.validator_hotkey == hotkey)
        .values(result_held_since=func.coalesce(A.c.result_held_since, now))
        .returning(A.c.result_held_since)
    )
    held = (await conn.execute(stmt)).scalar()
    return held if isinstance(held, datetime) else now


async def reject_assignment(conn: AsyncConnection, job_id: str, hotkey: str) -> None:
    """The validator's report failed a check: its assignment no longer counts and is never
    re-offered, so the scheduler gives the job to another validator."""
    await conn.execute(
        update(A)
        .where(A.c.job_id == job_id, A.c.validator_hotkey == hotkey)
        .values(state="rejected", finished_at=utcnow())
    )


async def discard_result(conn: AsyncConnection, job_id: str, hotkey: str) -> None:
    """A result that failed its audit: the validator's result, episodes and step samples
    of the job are deleted (they never count again) and the job is live again, so the
    scheduler has another validator run it and the quorum can still form."""
    for telemetry in (RES, E, ST):
        await conn.execute(
            telemetry.delete().where(
                telemetry.c.job_id == job_id, telemetry.c.validator_hotkey == hotkey
            )
        )
    now = utcnow()
    reopened = (
        await conn.execute(
            update(J)
            .where(J.c.id == job_id, J.c.state.in_(DONE))
            .values(state="queued", updated_at=now, finished_at=None)
            .returning(J.c.submission_id)
        )
    ).scalar()
    if reopened is not None:
        await conn.execute(
            update(S)
            .where(S.c.id == reopened, S.c.status == "evaluated")
            .values(status="scheduled", updated_at=now)
        )


async def revoke_assignments(conn: AsyncConnection, hotkey: str) -> list[str]:
    """A suspended validator's unfinished assignments: freed for other validators."""
    stmt = (
        update(A)
        .where(A.c.validator_hotkey == hotkey, A.c.state.in_(ACTIVE))
        .values(state="revoked", finished_at=utcnow())
        .returning(A.c.job_id)
    )
    return [str(j) for j in (await conn.execute(stmt)).scalars()]


async def refuse_assignment(conn: AsyncConnection, message_id: str, hotkey: str) -> str | None:
    """The validator refused the eval_job: the assignment no longer counts (never re-offered)."""
    stmt = (
        update(A)
        .where(
            A.c.message_id == message_id, A.c.validator_hotkey == hotkey, A.c.state == "assigned"
        )
        .values(state="refused", finished_at=utcnow())
        .returning(A.c.job_id)
    )
    job_id = (await conn.execute(stmt)).scalar()
    return str(job_id) if job_id is not None else None


async def active_assignments(conn: AsyncConnection, job_ids: list[str]) -> list[tuple[str, str]]:
    """``(job_id, validator_hotkey)`` of every unfinished assignment of ``job_ids`` (the
    validators a cancellation must reach)."""
    if not job_ids:
        return []
    stmt = (
        select(A.c.job_id, A.c.validator_hotkey)
        .where(A.c.job_id.in_(job_ids), A.c.state.in_(ACTIVE))
        .order_by(A.c.job_id, A.c.validator_hotkey)
    )
    return [(r[0], r[1]) for r in (await conn.execute(stmt)).all()]
