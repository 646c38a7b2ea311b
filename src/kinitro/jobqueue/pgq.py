"""pgqueuer integration: install DDL, the eval-job entrypoint and the queue timers.

pgqueuer 1.6 semantics that the timers below rely on (read from the installed package):

* A consumer (``QueueManager.run(heartbeat_timeout=T)``) marks each job it dequeues
  ``picked`` and, while the handler runs, refreshes the row's ``heartbeat`` every ``T/2``
  (flushed in batches at most ``T/8`` later).
* The dequeue query also re-picks ``picked`` jobs whose heartbeat is older than ``T``.
  So a crashed consumer's jobs are picked up again after at most ``T`` (+ one dequeue
  poll), and a live consumer's jobs — however slow — keep a fresh heartbeat and are never
  handed to a second consumer, as long as its event loop is not blocked for ~``T/2``.
* ``dedupe_key`` is unique among ``queued``/``picked`` rows: we use the job id, so one job
  is never queued twice.

:func:`consume_jobs` is the one consumer loop, shared by both adapters of the validator
database: PostgreSQL hands it pgqueuer's SQL ``Queries`` on a dedicated connection, the
in-memory twin pgqueuer's own ``InMemoryQueries``. Either way the same pgqueuer code picks,
heart-beats and retries, so the evaluator's lifecycle tests on the twin exercise it too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from pgqueuer import RetryRequested
from pgqueuer.adapters.persistence import schema_ddl
from pgqueuer.domain.schema.declaration import target
from pgqueuer.domain.settings import DBSettings
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager

from kinitro.jobqueue.errors import JobQueueError, RetryJob

if TYPE_CHECKING:
    from pgqueuer.ports import RepositoryPort

#: pgqueuer entrypoint of evaluation jobs. Payload: the job id (UTF-8); the full
#: ``eval_job`` is read with ``JobQueue.get_job(job_id)``.
EVAL_JOB_ENTRYPOINT = "eval_job"


@dataclass(frozen=True, slots=True)
class QueueTimers:
    """pgqueuer timers for the evaluator's consumer (see ``docs/validator.md``).

    ``heartbeat_timeout``: a picked job whose heartbeat is older than this is re-picked.
    60 s: heartbeats go out every 30 s, so a live evaluator would have to miss two of them
    (its event loop blocked for > 30 s — rollouts run in Ray actors, not on the loop) before
    its job could be run twice; a crashed evaluator's job restarts within ~1 minute.
    ``dequeue_timeout``: how long a consumer waits for a NOTIFY before polling anyway.
    ``retry_delay``: delay before an infrastructure-fault retry (``RetryRequested``).
    ``max_attempts``: bounded retries of infrastructure faults before giving up.
    """

    heartbeat_timeout: timedelta = timedelta(seconds=60)
    dequeue_timeout: timedelta = timedelta(seconds=5)
    retry_delay: timedelta = timedelta(seconds=10)
    max_attempts: int = 3

    @classmethod
    def fast(cls) -> QueueTimers:
        """Short timers for tests and the devnet's crash drills."""
        return cls(
            heartbeat_timeout=timedelta(seconds=4),
            dequeue_timeout=timedelta(seconds=1),
            retry_delay=timedelta(seconds=1),
            max_attempts=3,
        )


def job_id_from_payload(payload: bytes | None) -> str:
    """The job id carried by a pgqueuer ``eval_job`` job's payload."""
    if not payload:
        raise JobQueueError("pgqueuer eval_job without payload")
    return payload.decode()


async def consume_jobs(
    queries: RepositoryPort,
    handler: Callable[[str, int], Awaitable[None]],
    *,
    concurrency: int,
    timers: QueueTimers,
    stop: asyncio.Event,
) -> None:
    """Run ``handler(job_id, attempts)`` for ``eval_job`` entries until ``stop`` is set.

    :class:`~kinitro.jobqueue.errors.RetryJob` from the handler becomes pgqueuer's
    ``RetryRequested`` (the entry goes back to ``queued`` after its delay, attempts + 1).
    """

    qm = QueueManager(queries)

    @qm.entrypoint(EVAL_JOB_ENTRYPOINT, concurrency_limit=max(1, concurrency))
    async def _run(job: Job) -> None:
        try:
            await handler(job_id_from_payload(job.payload), job.attempts)
        except RetryJob as exc:
            raise RetryRequested(delay=exc.delay, reason=exc.reason[:500]) from None

    async def relay_stop() -> None:
        await stop.wait()
        qm.shutdown.set()

    relay = asyncio.create_task(relay_stop(), name="eval-job-consumer-stop")
    try:
        await qm.run(
            batch_size=1,
            heartbeat_timeout=timers.heartbeat_timeout,
            dequeue_timeout=timers.dequeue_timeout,
        )
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


def _settings() -> DBSettings:
    return DBSettings()


def install_statements() -> list[str]:
    """pgqueuer's install DDL, one statement per item, in dependency order."""

    settings = _settings()
    schema = target(settings)
    statements = [schema_ddl.render_enum(e, settings) for e in schema.enums]
    statements += [schema_ddl.render_table(t, settings) for t in schema.tables]
    statements += [schema_ddl.render_index(i, settings) for i in schema.indexes]
    statements += [schema_ddl.render_function(f, settings) for f in schema.functions]
    statements += [schema_ddl.render_trigger(t, settings) for t in schema.triggers]
    return statements


def uninstall_statements() -> list[str]:
    """pgqueuer's uninstall DDL, one statement per item (dependents first)."""

    return [s for s in schema_ddl.render_uninstall(_settings()).splitlines() if s.strip()]
