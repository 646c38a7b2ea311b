"""The validator database, cut by who uses it.

Two processes share one validator database and each sees only its part:

======================  ====================================  ===========================
port                    used by                               operations
======================  ====================================  ===========================
:class:`JobSource`      evaluator (orchestrator)              next job, its payload
:class:`ResultSink`     evaluator (orchestrator, telemetry)   statuses, results, episodes
:class:`JobInbox`       validator node (``eval_job`` in)      store + queue, cancel, look up
:class:`OutboxFeed`     validator node (outbox sender)        pending, ack, dead letters
:class:`WeightsStore`   validator node (weight setter)        store, pick, record outcome
:class:`NodeStatus`     validator node, ``validator status``  connection row, depths
======================  ====================================  ===========================

:class:`ValidatorDatabase` is all of them plus the lifecycle. Two adapters implement it
and one conformance suite (``tests/jobqueue/test_conformance.py``) runs against both:
:class:`kinitro.jobqueue.postgres.JobQueue` (PostgreSQL + pgqueuer, production) and
:class:`kinitro.jobqueue.memory.MemoryJobQueue` (in-memory twin for logic tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from kinitro.jobqueue.pgq import QueueTimers
from kinitro.jobqueue.records import (
    ConnectionInfo,
    DeadLetter,
    EnqueueOutcome,
    JobRecord,
    OutboxEntry,
    QueueDepths,
    ValidatorStatus,
    WeightsEntry,
)
from kinitro.protocol.common import JobState
from kinitro.protocol.validator_ws import (
    Episode,
    EpisodeSteps,
    EvalJob,
    EvalResult,
    JobStatus,
    SetWeights,
)

#: What the evaluator writes to the outbox (checked at runtime too: anything else raises
#: :class:`~kinitro.jobqueue.errors.UnsupportedMessageError`).
OutboxMessage = JobStatus | EvalResult | Episode | EpisodeSteps

JobHandler = Callable[[str, int], Awaitable[None]]
"""Runs one queued job: ``handler(job_id, attempts_so_far)``. Raising
:class:`~kinitro.jobqueue.errors.RetryJob` puts the job back in the queue (after its
delay); returning or raising anything else removes it."""


@runtime_checkable
class JobSource(Protocol):
    """Where the evaluator's jobs come from (at-least-once: a job whose consumer stops
    heart-beating is handed out again after ``timers.heartbeat_timeout``)."""

    async def get_job_record(self, job_id: str) -> JobRecord:
        """The job as received; raises :class:`~kinitro.jobqueue.errors.JobNotFoundError`."""
        ...

    async def consume(
        self,
        handler: JobHandler,
        *,
        concurrency: int,
        timers: QueueTimers,
        stop: asyncio.Event,
    ) -> None:
        """Run ``handler`` for queued jobs, ``concurrency`` at a time, until ``stop`` is
        set (jobs already running finish or re-queue themselves first)."""
        ...


@runtime_checkable
class ResultSink(Protocol):
    """Where the evaluator's output goes: the durable outbox, in append order per job.

    The effect of a re-run stays single: the first ``eval_result`` of a job wins and
    statuses after a terminal one are dropped; appends are idempotent on message ids.
    """

    async def report_status(
        self,
        job_id: str,
        state: JobState,
        *,
        episodes_done: int | None = None,
        episodes_total: int | None = None,
        detail: str | None = None,
    ) -> JobStatus | None:
        """Append a ``job_status`` with the job's next ``seq``; ``None`` if dropped."""
        ...

    async def append_outbox(self, message: OutboxMessage) -> bool:
        """Append one message; ``False`` when it was a duplicate or dropped."""
        ...

    async def append_outbox_many(self, messages: Sequence[OutboxMessage]) -> list[bool]:
        """Append several messages atomically (all or none)."""
        ...


@runtime_checkable
class JobInbox(Protocol):
    """Jobs arriving from the backend (the validator node's reader)."""

    async def enqueue_job(self, job: EvalJob) -> EnqueueOutcome:
        """Store ``job`` and queue it in one step; ack the backend only afterwards."""
        ...

    async def cancel_job(self, job_id: str, reason: str) -> bool:
        """The backend's ``cancel_job``: mark the job ``cancelled`` (its evaluator skips it
        or stops it; its later statuses are dropped); ack the backend only afterwards.
        ``False`` when there was nothing to cancel (unknown or already finished)."""
        ...

    async def get_job(self, job_id: str) -> EvalJob: ...

    async def get_job_record(self, job_id: str) -> JobRecord: ...

    async def list_jobs(
        self, *, states: Iterable[JobState] | None = None, limit: int = 100
    ) -> list[JobRecord]: ...


@runtime_checkable
class OutboxFeed(Protocol):
    """The sending side of the outbox: rows leave only when the backend acks them."""

    async def pending_outbox(
        self, *, limit: int = 100, exclude: Iterable[str] = ()
    ) -> list[OutboxEntry]: ...

    async def mark_sent(self, message_ids: Sequence[str]) -> None: ...

    async def ack_outbox(self, message_id: str) -> bool: ...

    async def ack_outbox_many(self, message_ids: Sequence[str]) -> int: ...

    async def reject_outbox(
        self, message_id: str, *, error_code: str | None, detail: str | None
    ) -> bool: ...

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]: ...

    async def requeue_dead_letters(self, message_ids: Sequence[str] | None = None) -> int: ...

    def outbox_listener(
        self, on_append: Callable[[], None], *, retry_s: float = 1.0
    ) -> AbstractAsyncContextManager[None]:
        """While open, ``on_append()`` runs (on the loop) after each committed append."""
        ...


@runtime_checkable
class WeightsStore(Protocol):
    """``set_weights`` from the backend and what became of them on chain."""

    async def record_weights(self, message: SetWeights) -> bool: ...

    async def next_pending_weights(self) -> WeightsEntry | None: ...

    async def weights_attempt_failed(
        self, weights_id: str, error: str, *, give_up: bool
    ) -> None: ...

    async def weights_set(
        self, weights_id: str, block: int, *, reveal_block: int | None = None
    ) -> None:
        """Record that ``weights_id`` is on chain (set at, or committed at, ``block``); a
        second call for weights already set counts a refresh."""
        ...

    async def last_weights_set(self) -> WeightsEntry | None: ...


@runtime_checkable
class NodeStatus(Protocol):
    """The node's connection row and the queue depths (``kinitro validator status``)."""

    async def set_connection(self, state: str, **fields: object) -> None: ...

    async def connection(self) -> ConnectionInfo: ...

    async def depths(self) -> QueueDepths: ...

    async def status(self) -> ValidatorStatus: ...


@runtime_checkable
class ValidatorDatabase(
    JobSource, ResultSink, JobInbox, OutboxFeed, WeightsStore, NodeStatus, Protocol
):
    """The whole validator database (what each adapter implements)."""

    async def check_schema(self) -> None:
        """Raise :class:`~kinitro.jobqueue.errors.SchemaNotReadyError` unless usable."""
        ...

    async def close(self) -> None: ...
