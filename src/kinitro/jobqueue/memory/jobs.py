"""Jobs in the twin: rows plus entries in pgqueuer's in-memory queue (same consumer)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from kinitro.jobqueue.memory.state import MemoryState, StoredJob, utcnow
from kinitro.jobqueue.pgq import EVAL_JOB_ENTRYPOINT, QueueTimers, consume_jobs
from kinitro.jobqueue.ports import JobHandler
from kinitro.jobqueue.records import (
    TERMINAL_STATES,
    EnqueueOutcome,
    JobRecord,
    safe_text,
)
from kinitro.protocol.common import JobState
from kinitro.protocol.validator_ws import EvalJob


class MemoryJobs(MemoryState):
    async def enqueue_job(self, job: EvalJob) -> EnqueueOutcome:
        self._io("enqueue_job")
        async with self._lock:
            row = self._jobs.get(job.job_id)
            if row is None:
                self._jobs[job.job_id] = StoredJob(
                    job.job_id, job.attempt, job.model_dump(mode="json")
                )
                await self._queue(job.job_id)
                return EnqueueOutcome.CREATED
            if await self._queued(job.job_id):
                return EnqueueOutcome.DUPLICATE
            newer = job.attempt > row.attempt
            if row.state in TERMINAL_STATES and not newer:
                return EnqueueOutcome.DUPLICATE
            row.state, row.updated_at = JobState.QUEUED.value, utcnow()
            if newer:
                row.attempt, row.payload = job.attempt, job.model_dump(mode="json")
                row.has_result, row.episodes_done, row.detail = False, 0, None
            await self._queue(job.job_id)
            return EnqueueOutcome.REQUEUED

    async def _queue(self, job_id: str) -> None:
        await self.queries.enqueue(
            EVAL_JOB_ENTRYPOINT, job_id.encode(), dedupe_key=job_id, on_conflict="skip"
        )

    async def _queued(self, job_id: str) -> bool:
        """A queue entry for ``job_id`` is waiting or running."""
        return any(
            j.payload == job_id.encode()
            for j in await self.queries.browse_queue(
                limit=1_000_000, statuses=["queued", "picked"], entrypoints=[EVAL_JOB_ENTRYPOINT]
            )
        )

    async def cancel_job(self, job_id: str, reason: str) -> bool:
        self._io("cancel_job")
        async with self._lock:
            row = self._jobs.get(job_id)
            if row is None or row.state in TERMINAL_STATES or row.has_result:
                return False
            row.state, row.detail = JobState.CANCELLED.value, safe_text(reason)
            row.updated_at = utcnow()
            return True

    async def get_job(self, job_id: str) -> EvalJob:
        return (await self.get_job_record(job_id)).eval_job()

    async def get_job_record(self, job_id: str) -> JobRecord:
        self._io("get_job_record")
        return self._job(job_id).record()

    async def list_jobs(
        self, *, states: Iterable[JobState] | None = None, limit: int = 100
    ) -> list[JobRecord]:
        self._io("list_jobs")
        wanted = None if states is None else {s.value for s in states}
        rows = [r for r in self._jobs.values() if wanted is None or r.state in wanted]
        rows.sort(key=lambda r: r.received_at, reverse=True)
        return [r.record() for r in rows[:limit]]

    async def consume(
        self, handler: JobHandler, *, concurrency: int, timers: QueueTimers, stop: asyncio.Event
    ) -> None:
        await consume_jobs(self.queries, handler, concurrency=concurrency, timers=timers, stop=stop)
