"""Placing jobs on validators: a round's jobs are created, the ones short of validators
found, and each assigned (with a lease) to the round's panel where possible; leases that
run out or pass the job's deadline expire so the job goes to another validator.
What a validator then does with its assignment is in :mod:`.repo_jobs`."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import rows, table, utcnow
from kinitro.backend.db.models import EvalRound, Job, JobAssignment, Validator
from kinitro.backend.db.repo_jobs import ACTIVE, DONE, LIVE_JOB
from kinitro.backend.db.repo_validators import in_good_standing

J = table(Job)
A = table(JobAssignment)
R = table(EvalRound)
V = table(Validator)


async def create_job(conn: AsyncConnection, values: dict[str, Any]) -> str | None:
    """Insert a job; None when the (submission, benchmark, round) job exists already."""
    stmt = (
        insert(J)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[J.c.submission_id, J.c.benchmark_id, J.c.round_id],
            index_where=J.c.audit_of_job.is_(None),
        )
        .returning(J.c.id)
    )
    job_id = (await conn.execute(stmt)).scalar()
    return str(job_id) if job_id is not None else None


async def expire_leases(conn: AsyncConnection, now: datetime) -> list[dict[str, Any]]:
    """Active assignments whose lease ran out, or that run past the job's deadline."""
    past_deadline = (
        select(J.c.id)
        .where(
            J.c.id == A.c.job_id,
            A.c.acked_at + func.make_interval(0, 0, 0, 0, 0, 0, J.c.deadline_s) < now,
        )
        .exists()
    )
    stmt = (
        update(A)
        .where(A.c.state.in_(ACTIVE), or_(A.c.lease_expires_at < now, past_deadline))
        .values(state="expired")
        .returning(A.c.job_id, A.c.validator_hotkey)
    )
    return rows(await conn.execute(stmt))


async def jobs_short_of_validators(
    conn: AsyncConnection, limit: int = 200, *, committed_only: bool = True
) -> list[dict[str, Any]]:
    """Live jobs whose active + done assignments are fewer than their replication
    (assignments of suspended validators do not count: their jobs go to others); with
    ``committed_only``, only jobs whose round's commitment is on chain."""
    counted = (
        select(A.c.job_id, func.count().label("n"))
        .join(V, V.c.hotkey == A.c.validator_hotkey)
        .where(A.c.state.in_(ACTIVE + DONE), in_good_standing())
        .group_by(A.c.job_id)
        .subquery()
    )
    n = func.coalesce(counted.c.n, 0)
    stmt = (
        select(
            J.c.id,
            J.c.replication,
            J.c.round_id,
            J.c.benchmark_id,
            J.c.audit_of_validator,
            n.label("assigned"),
        )
        .outerjoin(counted, counted.c.job_id == J.c.id)
        .where(J.c.state.in_(LIVE_JOB), n < J.c.replication)
    )
    if committed_only:
        committed = select(R.c.id).where(R.c.commit_block.is_not(None))
        stmt = stmt.where(J.c.round_id.in_(committed))
    stmt = stmt.order_by(J.c.created_at).limit(limit)
    return rows(await conn.execute(stmt))


async def round_panel(conn: AsyncConnection, round_id: str, benchmark_id: str) -> set[str]:
    """Validators holding or having done a job of this round and benchmark: a round's
    jobs go to the same validators where possible, so its episodes pair up."""
    stmt = (
        select(A.c.validator_hotkey)
        .join(J, J.c.id == A.c.job_id)
        .where(
            J.c.round_id == round_id,
            J.c.benchmark_id == benchmark_id,
            A.c.state.in_(ACTIVE + DONE),
        )
        .distinct()
    )
    return set((await conn.execute(stmt)).scalars())


async def assignment_hotkeys(conn: AsyncConnection, job_id: str) -> dict[str, str]:
    stmt = select(A.c.validator_hotkey, A.c.state).where(A.c.job_id == job_id)
    return {r[0]: r[1] for r in (await conn.execute(stmt)).all()}


async def assign(conn: AsyncConnection, job_id: str, hotkey: str, lease_s: float) -> str:
    """Assign (or re-offer an expired assignment of) ``job_id`` to ``hotkey``."""
    now = utcnow()
    message_id = uuid.uuid4().hex
    stmt = insert(A).values(
        job_id=job_id,
        validator_hotkey=hotkey,
        message_id=message_id,
        state="assigned",
        lease_expires_at=now + timedelta(seconds=lease_s),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[A.c.job_id, A.c.validator_hotkey],
        set_={
            "message_id": message_id,
            "state": "assigned",
            "attempt": A.c.attempt + 1,
            "lease_expires_at": now + timedelta(seconds=lease_s),
            "sent_at": None,
            "acked_at": None,
        },
        where=A.c.state.in_(("expired",)),
    )
    await conn.execute(stmt)
    return message_id
