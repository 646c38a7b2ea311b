"""The in-memory twin of the validator database: :class:`MemoryJobQueue`.

The same ports as :class:`~kinitro.jobqueue.postgres.JobQueue`, with the same rules
(:mod:`kinitro.jobqueue.rules`) and the same queue: pgqueuer's own in-memory adapter
(``InMemoryQueries``) driven by the same consumer loop
(:func:`~kinitro.jobqueue.pgq.consume_jobs`). ``tests/jobqueue/test_conformance.py`` runs
one suite against both, so logic built on the ports (the evaluator's lifecycle, deadlines,
retries, telemetry) is tested here without PostgreSQL while end-to-end tests keep the real
path.

An operation never yields to the event loop between its first read and its last write
(enqueue holds a lock around its one await): that is the twin's transaction, and a batch
append lands whole or not at all. Nothing outlives the process;
this is not a production store. :meth:`MemoryJobQueue.fail` simulates a database outage
for chosen operations (they raise :class:`ConnectionError`, like a dropped connection) so
callers' retry paths can be exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kinitro.jobqueue.errors import JobNotFoundError, JobQueueError
from kinitro.jobqueue.pgq import EVAL_JOB_ENTRYPOINT, QueueTimers, consume_jobs
from kinitro.jobqueue.ports import JobHandler, OutboxMessage
from kinitro.jobqueue.records import (
    CONNECTION_FIELDS,
    TERMINAL_STATES,
    ConnectionInfo,
    DeadLetter,
    EnqueueOutcome,
    JobRecord,
    OutboxEntry,
    QueueDepths,
    ValidatorStatus,
    WeightsEntry,
    safe_text,
)
from kinitro.jobqueue.rules import check_outbox_types, job_row_update, next_status
from kinitro.protocol.common import JobState
from kinitro.protocol.validator_ws import EvalJob, JobStatus, SetWeights, dump_message


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Job:
    job_id: str
    attempt: int
    payload: dict[str, Any]
    state: str = JobState.QUEUED.value
    status_seq: int = 0
    episodes_done: int = 0
    episodes_total: int = 0
    detail: str | None = None
    has_result: bool = False
    received_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)

    def record(self) -> JobRecord:
        return JobRecord(**{**dataclasses.asdict(self), "state": JobState(self.state)})


@dataclass(slots=True)
class _Sent:
    """An outbox row: the entry plus when it was last sent."""

    entry: OutboxEntry
    last_sent_at: datetime | None = None


@dataclass(slots=True)
class _Weights:
    entry: WeightsEntry
    order: int  # insertion order: the tie-break PostgreSQL gets from received_at


class MemoryJobQueue:
    """The validator database in memory (tests, drills). All ports, no persistence."""

    def __init__(self) -> None:
        from pgqueuer.adapters.inmemory import InMemoryDriver, InMemoryQueries

        self.queries = InMemoryQueries(driver=InMemoryDriver())
        """pgqueuer's in-memory queue (tests may inspect it, or clear it to lose entries)."""
        self._lock = asyncio.Lock()
        self._jobs: dict[str, _Job] = {}
        self._outbox: dict[str, _Sent] = {}  # by message id, in outbox id order
        self._dead: dict[str, tuple[DeadLetter, str]] = {}  # + payload
        self._weights: dict[str, _Weights] = {}
        self._connection: dict[str, Any] | None = None
        self._listeners: list[Callable[[], None]] = []
        self._ids = itertools.count(1)
        self._failing: dict[str, int | None] = {}

    # ------------------------------------------------------------ outages, lifecycle

    def fail(self, operations: Collection[str], *, times: int | None = None) -> None:
        """Make ``operations`` (method names) raise ``ConnectionError``: the next ``times``
        calls, or every call until :meth:`recover`."""
        for name in operations:
            if not hasattr(self, name):
                raise ValueError(f"no operation {name!r}")
            self._failing[name] = times

    def recover(self) -> None:
        self._failing.clear()

    def _io(self, operation: str) -> None:
        if operation not in self._failing:
            return
        left = self._failing[operation]
        if left is not None:
            if left <= 1:
                del self._failing[operation]
            else:
                self._failing[operation] = left - 1
        raise ConnectionError(f"validator database unavailable ({operation}, simulated)")

    async def check_schema(self) -> None:
        self._io("check_schema")

    async def close(self) -> None:
        pass

    # ------------------------------------------------------------ jobs (JobInbox, JobSource)

    async def enqueue_job(self, job: EvalJob) -> EnqueueOutcome:
        self._io("enqueue_job")
        async with self._lock:
            row = self._jobs.get(job.job_id)
            if row is None:
                self._jobs[job.job_id] = _Job(job.job_id, job.attempt, job.model_dump(mode="json"))
                await self._queue(job.job_id)
                return EnqueueOutcome.CREATED
            if await self._queued(job.job_id):
                return EnqueueOutcome.DUPLICATE
            newer = job.attempt > row.attempt
            if row.state in TERMINAL_STATES and not newer:
                return EnqueueOutcome.DUPLICATE
            row.state, row.updated_at = JobState.QUEUED.value, _now()
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

    async def get_job(self, job_id: str) -> EvalJob:
        return (await self.get_job_record(job_id)).eval_job()

    async def get_job_record(self, job_id: str) -> JobRecord:
        self._io("get_job_record")
        return self._job(job_id).record()

    def _job(self, job_id: str) -> _Job:
        row = self._jobs.get(job_id)
        if row is None:
            raise JobNotFoundError(job_id)
        return row

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

    # ------------------------------------------------------------ reports (ResultSink)

    async def report_status(
        self,
        job_id: str,
        state: JobState,
        *,
        episodes_done: int | None = None,
        episodes_total: int | None = None,
        detail: str | None = None,
    ) -> JobStatus | None:
        self._io("report_status")
        message = next_status(
            self._job(job_id),
            job_id,
            state,
            episodes_done=episodes_done,
            episodes_total=episodes_total,
            detail=detail,
        )
        if message is not None:
            self._commit(self._stage([message]))
        return message

    async def append_outbox(self, message: OutboxMessage) -> bool:
        return (await self.append_outbox_many([message]))[0]

    async def append_outbox_many(self, messages: Sequence[OutboxMessage]) -> list[bool]:
        check_outbox_types(messages)
        self._io("append_outbox_many")
        staged = self._stage(messages)
        self._commit(staged)
        return staged[2]

    def _stage(
        self, messages: Sequence[OutboxMessage]
    ) -> tuple[dict[str, _Job], list[OutboxEntry], list[bool]]:
        """Apply ``messages`` to copies (raises before anything changed)."""
        rows: dict[str, _Job] = {}
        entries: dict[str, OutboxEntry] = {}
        appended: list[bool] = []
        for message in messages:
            if message.job_id not in rows:
                rows[message.job_id] = dataclasses.replace(self._job(message.job_id))
            row = rows[message.job_id]
            changes = job_row_update(row, message)
            if changes is None or message.id in self._outbox or message.id in entries:
                appended.append(False)
                continue
            entries[message.id] = OutboxEntry(
                outbox_id=next(self._ids),
                message_id=message.id,
                job_id=row.job_id,
                type=message.type,
                payload=dump_message(message),
                created_at=_now(),
                send_count=0,
            )
            for name, value in changes.items():
                setattr(row, name, safe_text(value) if name == "detail" else value)
            if changes:
                row.updated_at = _now()
            appended.append(True)
        return rows, list(entries.values()), appended

    def _commit(self, staged: tuple[dict[str, _Job], list[OutboxEntry], list[bool]]) -> None:
        rows, entries, _ = staged
        self._jobs.update(rows)
        self._outbox.update((e.message_id, _Sent(e)) for e in entries)
        if entries:
            self._notify()

    def _notify(self) -> None:
        for on_append in list(self._listeners):
            on_append()

    # ------------------------------------------------------------ outbox (OutboxFeed)

    async def pending_outbox(
        self, *, limit: int = 100, exclude: Iterable[str] = ()
    ) -> list[OutboxEntry]:
        self._io("pending_outbox")
        excluded = set(exclude)
        pending = [s.entry for s in self._outbox.values() if s.entry.message_id not in excluded]
        return sorted(pending, key=lambda e: e.outbox_id)[:limit]

    async def mark_sent(self, message_ids: Sequence[str]) -> None:
        self._io("mark_sent")
        for message_id in message_ids:
            if (sent := self._outbox.get(message_id)) is not None:
                sent.entry = dataclasses.replace(sent.entry, send_count=sent.entry.send_count + 1)
                sent.last_sent_at = _now()

    async def ack_outbox(self, message_id: str) -> bool:
        return await self.ack_outbox_many([message_id]) == 1

    async def ack_outbox_many(self, message_ids: Sequence[str]) -> int:
        self._io("ack_outbox_many")
        return sum(self._outbox.pop(m, None) is not None for m in set(message_ids))

    async def reject_outbox(
        self, message_id: str, *, error_code: str | None, detail: str | None
    ) -> bool:
        self._io("reject_outbox")
        sent = self._outbox.pop(message_id, None)
        if sent is None:
            return False
        e = sent.entry
        letter = DeadLetter(
            e.message_id, e.job_id, e.type, error_code, safe_text(detail), e.created_at, _now()
        )
        self._dead.setdefault(message_id, (letter, e.payload))
        return True

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        self._io("dead_letters")
        letters = [letter for letter, _ in self._dead.values()]
        return sorted(letters, key=lambda d: d.rejected_at, reverse=True)[:limit]

    async def requeue_dead_letters(self, message_ids: Sequence[str] | None = None) -> int:
        self._io("requeue_dead_letters")
        chosen = list(self._dead) if message_ids is None else [m for m in message_ids]
        moved = 0
        for message_id in chosen:
            if (dead := self._dead.pop(message_id, None)) is None:
                continue
            letter, payload = dead
            moved += 1
            if message_id not in self._outbox:
                entry = OutboxEntry(
                    outbox_id=next(self._ids),
                    message_id=message_id,
                    job_id=letter.job_id,
                    type=letter.type,
                    payload=payload,
                    created_at=letter.created_at,
                    send_count=0,
                )
                self._outbox[message_id] = _Sent(entry)
        if moved:
            self._notify()
        return moved

    @contextlib.asynccontextmanager
    async def outbox_listener(
        self, on_append: Callable[[], None], *, retry_s: float = 1.0
    ) -> AsyncIterator[None]:
        self._listeners.append(on_append)
        try:
            yield
        finally:
            self._listeners.remove(on_append)

    # ------------------------------------------------------------ weights (WeightsStore)

    async def record_weights(self, message: SetWeights) -> bool:
        self._io("record_weights")
        if message.weights_id in self._weights:
            return False
        entry = WeightsEntry(
            message.weights_id,
            message.netuid,
            {int(k): float(v) for k, v in message.weights.items()},
            message.computed_at,
            _now(),
            "pending",
            0,
            None,
            None,
            None,
        )
        self._weights[message.weights_id] = _Weights(entry, len(self._weights))
        return True

    async def next_pending_weights(self) -> WeightsEntry | None:
        self._io("next_pending_weights")
        rows = [w for w in self._weights.values() if w.entry.status == "pending"]
        if not rows:
            return None
        rows.sort(key=lambda w: (w.entry.computed_at, w.order), reverse=True)
        on_chain = [w.entry.computed_at for w in self._weights.values() if w.entry.status == "set"]
        newest = None if on_chain and rows[0].entry.computed_at <= max(on_chain) else rows[0]
        for w in rows:
            if w is not newest:
                w.entry = dataclasses.replace(w.entry, status="superseded")
        return None if newest is None else newest.entry

    async def weights_attempt_failed(self, weights_id: str, error: str, *, give_up: bool) -> None:
        self._io("weights_attempt_failed")
        if (w := self._weights.get(weights_id)) is not None:
            status = "failed" if give_up else w.entry.status
            w.entry = dataclasses.replace(
                w.entry, attempts=w.entry.attempts + 1, error=error[:2000], status=status
            )

    async def weights_set(self, weights_id: str, block: int) -> None:
        self._io("weights_set")
        if (w := self._weights.get(weights_id)) is not None:
            w.entry = dataclasses.replace(
                w.entry,
                status="set",
                block=block,
                set_at=_now(),
                attempts=w.entry.attempts + 1,
                error=None,
            )

    async def last_weights_set(self) -> WeightsEntry | None:
        self._io("last_weights_set")
        done = [w.entry for w in self._weights.values() if w.entry.status == "set"]
        return max(done, key=lambda e: e.set_at or e.received_at, default=None)

    # ------------------------------------------------------------ status (NodeStatus)

    async def set_connection(self, state: str, **fields: object) -> None:
        self._io("set_connection")
        unknown = set(fields) - CONNECTION_FIELDS
        if unknown:
            raise JobQueueError(f"unknown connection fields {sorted(unknown)}")
        values = {"state": state, **fields, "pid": fields.get("pid", os.getpid())}
        self._connection = {**(self._connection or {}), **values, "updated_at": _now()}

    async def connection(self) -> ConnectionInfo:
        self._io("connection")
        return ConnectionInfo() if self._connection is None else ConnectionInfo(**self._connection)

    async def depths(self) -> QueueDepths:
        self._io("depths")
        counts: dict[str, int] = {}
        for stat in await self.queries.queue_size():
            if stat.entrypoint == EVAL_JOB_ENTRYPOINT:
                counts[stat.status] = counts.get(stat.status, 0) + stat.count
        by_state: dict[str, int] = {}
        for row in self._jobs.values():
            by_state[row.state] = by_state.get(row.state, 0) + 1
        return QueueDepths(
            jobs_queued=counts.get("queued", 0),
            jobs_in_flight=counts.get("picked", 0),
            outbox=len(self._outbox),
            outbox_oldest_at=min((s.entry.created_at for s in self._outbox.values()), default=None),
            outbox_dead=len(self._dead),
            jobs_by_state=by_state,
        )

    async def status(self) -> ValidatorStatus:
        return ValidatorStatus(
            connection=await self.connection(),
            depths=await self.depths(),
            last_weights=await self.last_weights_set(),
            pending_weights=sum(w.entry.status == "pending" for w in self._weights.values()),
        )
