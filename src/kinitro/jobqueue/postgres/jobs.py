"""Jobs in PostgreSQL: ``vq_jobs`` rows and their pgqueuer entries.

Used by the validator node (a job arrives: store and queue it in one transaction, then
ack) and by the evaluator (consume the queue, read the job it was handed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import asyncpg
from pgqueuer.adapters.persistence.queries import Queries
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from kinitro.core.db import dsn
from kinitro.jobqueue.errors import JobNotFoundError
from kinitro.jobqueue.models import JobRow
from kinitro.jobqueue.pgq import EVAL_JOB_ENTRYPOINT, QueueTimers, consume_jobs
from kinitro.jobqueue.ports import JobHandler
from kinitro.jobqueue.records import TERMINAL_STATES, EnqueueOutcome, JobRecord, safe_text
from kinitro.protocol.common import JobState

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from kinitro.protocol.validator_ws import EvalJob


class PostgresJobs:
    engine: AsyncEngine

    async def enqueue_job(self, job: EvalJob) -> EnqueueOutcome:
        """Store ``job`` and queue it for the evaluator, in ONE transaction.

        Only after this returns may the validator ack the job to the backend. A job
        that arrives again is recognised by ``job_id`` (see :class:`EnqueueOutcome`).
        """
        payload = job.model_dump(mode="json")
        async with self.engine.begin() as conn:
            created = (
                await conn.execute(
                    pg_insert(JobRow)
                    .values(
                        job_id=job.job_id,
                        message_id=job.id,
                        submission_id=str(job.submission_id),
                        competition_id=str(job.competition_id),
                        miner_hotkey=job.miner_hotkey,
                        attempt=job.attempt,
                        payload=payload,
                        state=JobState.QUEUED.value,
                    )
                    .on_conflict_do_nothing(index_elements=[JobRow.job_id])
                    .returning(JobRow.job_id)
                )
            ).scalar_one_or_none()
            if created is not None:
                await _pgq_enqueue(conn, job.job_id)
                return EnqueueOutcome.CREATED

            row = (
                await conn.execute(
                    select(JobRow.attempt, JobRow.state)
                    .where(JobRow.job_id == job.job_id)
                    .with_for_update()
                )
            ).one()
            if await _pgq_active(conn, job.job_id):
                return EnqueueOutcome.DUPLICATE
            newer = job.attempt > row.attempt
            if row.state in TERMINAL_STATES and not newer:
                return EnqueueOutcome.DUPLICATE
            values: dict[str, Any] = {"state": JobState.QUEUED.value, "updated_at": func.now()}
            if newer:
                values |= {
                    "attempt": job.attempt,
                    "payload": payload,
                    "message_id": job.id,
                    "has_result": False,
                    "episodes_done": 0,
                    "detail": None,
                }
            await conn.execute(update(JobRow).where(JobRow.job_id == job.job_id).values(values))
            await _pgq_enqueue(conn, job.job_id)
            return EnqueueOutcome.REQUEUED

    async def cancel_job(self, job_id: str, reason: str) -> bool:
        async with self.engine.begin() as conn:
            cancelled = (
                await conn.execute(
                    update(JobRow)
                    .where(
                        JobRow.job_id == job_id,
                        JobRow.state.not_in(TERMINAL_STATES),
                        JobRow.has_result.is_(False),
                    )
                    .values(
                        state=JobState.CANCELLED.value,
                        detail=safe_text(reason),
                        updated_at=func.now(),
                    )
                    .returning(JobRow.job_id)
                )
            ).scalar_one_or_none()
        return cancelled is not None

    async def get_job(self, job_id: str) -> EvalJob:
        """The ``eval_job`` exactly as received. Raises :class:`JobNotFoundError`."""
        return (await self.get_job_record(job_id)).eval_job()

    async def get_job_record(self, job_id: str) -> JobRecord:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(JobRow).where(JobRow.job_id == job_id))).one_or_none()
        if row is None:
            raise JobNotFoundError(job_id)
        return _job_record(row)

    async def list_jobs(
        self, *, states: Iterable[JobState] | None = None, limit: int = 100
    ) -> list[JobRecord]:
        query = select(JobRow).order_by(JobRow.received_at.desc()).limit(limit)
        if states is not None:
            query = query.where(JobRow.state.in_([s.value for s in states]))
        async with self.engine.connect() as conn:
            return [_job_record(r) for r in (await conn.execute(query)).all()]

    async def consume(
        self,
        handler: JobHandler,
        *,
        concurrency: int,
        timers: QueueTimers,
        stop: asyncio.Event,
    ) -> None:
        """pgqueuer's consumer on a dedicated connection (it LISTENs for new entries)."""

        conn = await asyncpg.connect(dsn(self.engine.url.render_as_string(hide_password=False)))
        try:
            await consume_jobs(
                Queries.from_asyncpg_connection(conn),
                handler,
                concurrency=concurrency,
                timers=timers,
                stop=stop,
            )
        finally:
            await conn.close()


async def _pgq_enqueue(conn: AsyncConnection, job_id: str) -> None:
    """Queue ``job_id`` for the evaluator inside ``conn``'s open transaction."""

    raw = await conn.get_raw_connection()
    queries = Queries.from_asyncpg_connection(raw.driver_connection)
    await queries.enqueue(
        EVAL_JOB_ENTRYPOINT, job_id.encode(), dedupe_key=job_id, on_conflict="skip"
    )


async def _pgq_active(conn: AsyncConnection, job_id: str) -> bool:
    found = (
        await conn.execute(
            text(
                "SELECT 1 FROM pgqueuer WHERE dedupe_key = :key "
                "AND status IN ('queued', 'picked') LIMIT 1"
            ),
            {"key": job_id},
        )
    ).first()
    return found is not None


def _job_record(r: Any) -> JobRecord:
    return JobRecord(
        job_id=r.job_id,
        attempt=r.attempt,
        payload=r.payload,
        state=JobState(r.state),
        status_seq=r.status_seq,
        episodes_done=r.episodes_done,
        episodes_total=r.episodes_total,
        detail=r.detail,
        has_result=r.has_result,
        received_at=r.received_at,
        updated_at=r.updated_at,
    )
