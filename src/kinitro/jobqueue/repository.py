"""The validator database repository: every SQL statement of the validator schema lives here.

Used by both processes that share the validator database: ``kinitro validator run`` (jobs
in, outbox out, weights, connection state) and ``kinitro evaluator run`` (job payloads,
status/results/telemetry into the outbox). See the package docstring for the API summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, ProgrammingError

from kinitro.core.db import create_engine
from kinitro.jobqueue.errors import (
    JobNotFoundError,
    JobQueueError,
    SchemaNotReadyError,
    UnsupportedMessageError,
)
from kinitro.jobqueue.models import ConnectionRow, JobRow, OutboxDeadRow, OutboxRow, WeightsRow
from kinitro.jobqueue.pgq import EVAL_JOB_ENTRYPOINT
from kinitro.protocol.common import JobState

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from kinitro.protocol.validator_ws import EvalJob, JobStatus, SetWeights

#: Message types the outbox carries (everything the evaluator produces for the backend).
OUTBOX_TYPES = frozenset({"job_status", "eval_result", "episode", "episode_steps"})

_TERMINAL = frozenset(s.value for s in JobState if s.is_terminal)

#: PostgreSQL NOTIFY channel signalled (at commit) whenever outbox rows are appended.
OUTBOX_CHANNEL = "kinitro_outbox"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EnqueueOutcome(StrEnum):
    """What :meth:`JobQueue.enqueue_job` did."""

    CREATED = "created"  # new job: row + pgqueuer job written
    DUPLICATE = "duplicate"  # already known and queued, running or finished: nothing done
    REQUEUED = "requeued"  # known, but not in the queue any more and not finished
    #                        (or a newer attempt of a finished job): queued again


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored: the raw ``eval_job`` payload plus local lifecycle state."""

    job_id: str
    attempt: int
    payload: dict[str, Any]
    state: JobState
    status_seq: int
    episodes_done: int
    episodes_total: int
    detail: str | None
    has_result: bool
    received_at: datetime
    updated_at: datetime

    def eval_job(self) -> EvalJob:
        from kinitro.protocol.validator_ws import EvalJob

        return EvalJob.model_validate(self.payload)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One pending outbox message; ``payload`` is the exact JSON text frame to send."""

    outbox_id: int
    message_id: str
    job_id: str | None
    type: str
    payload: str
    created_at: datetime
    send_count: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    job_id: str | None
    type: str
    error_code: str | None
    detail: str | None
    created_at: datetime
    rejected_at: datetime


@dataclass(frozen=True, slots=True)
class WeightsEntry:
    weights_id: str
    netuid: int
    weights: dict[int, float]
    computed_at: datetime
    received_at: datetime
    status: str
    attempts: int
    block: int | None
    set_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    state: str = "never connected"
    backend_url: str | None = None
    hotkey: str | None = None
    uid: int | None = None
    session_id: str | None = None
    lite: bool = False
    pid: int | None = None
    connected_at: datetime | None = None
    last_seen_at: datetime | None = None
    last_error: str | None = None
    reconnects: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QueueDepths:
    jobs_queued: int = 0  # pgqueuer rows waiting for an evaluator
    jobs_in_flight: int = 0  # pgqueuer rows picked by an evaluator
    outbox: int = 0  # messages waiting for the backend's ack
    outbox_oldest_at: datetime | None = None
    outbox_dead: int = 0
    jobs_by_state: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ValidatorStatus:
    connection: ConnectionInfo
    depths: QueueDepths
    last_weights: WeightsEntry | None
    pending_weights: int

    def to_dict(self) -> dict[str, Any]:
        def convert(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {str(k): convert(v) for k, v in value.items()}
            return value

        return convert(asdict(self))  # type: ignore[no-any-return]


class JobQueue:
    """Repository over the validator database. One instance per process; async-safe.

    Build with ``JobQueue.connect(url)`` (owns its engine) or ``JobQueue(engine)``.
    """

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool = False) -> None:
        self.engine = engine
        self._owns_engine = owns_engine

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 5) -> Self:
        return cls(create_engine(url, pool_size=pool_size), owns_engine=True)

    async def close(self) -> None:
        if self._owns_engine:
            await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def check_schema(self) -> None:
        """Raise :class:`SchemaNotReadyError` unless the validator schema is migrated."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(func.count()).select_from(JobRow).limit(1))
                await conn.execute(text("SELECT 1 FROM pgqueuer LIMIT 1"))
        except (ProgrammingError, DBAPIError) as exc:
            if "database" in str(exc) and "does not exist" in str(exc):
                raise SchemaNotReadyError(
                    "the validator database does not exist: create it, then run "
                    "`kinitro db upgrade --role validator --url …`"
                ) from exc
            if "does not exist" in str(exc):
                raise SchemaNotReadyError(
                    "validator database is not migrated: run "
                    "`kinitro db upgrade --role validator --url …`"
                ) from exc
            raise

    # ------------------------------------------------------------------ jobs in

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
            if row.state in _TERMINAL and not newer:
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

    # ------------------------------------------------------------------ outbox

    async def report_status(
        self,
        job_id: str,
        state: JobState,
        *,
        episodes_done: int | None = None,
        episodes_total: int | None = None,
        detail: str | None = None,
    ) -> JobStatus | None:
        """Build a ``job_status`` with the next ``seq`` of the job and append it.

        Returns the message, or ``None`` when it was dropped because the job already
        reached a terminal state (a late report from a superseded run).
        """
        from kinitro.protocol.validator_ws import JobStatus

        async with self.engine.begin() as conn:
            row = await _lock_job(conn, job_id)
            if row.state in _TERMINAL or row.has_result:
                return None
            message = JobStatus(
                job_id=job_id,
                state=state,
                seq=row.status_seq + 1,
                detail=detail,
                episodes_done=row.episodes_done if episodes_done is None else episodes_done,
                episodes_total=row.episodes_total if episodes_total is None else episodes_total,
                at=_utcnow(),
            )
            await self._append_locked(conn, row, message)
            await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
            return message

    async def append_outbox(self, message: BaseModel) -> bool:
        """Append one evaluator message (job_status, eval_result, episode, episode_steps).

        Idempotent on the message id. Per job, appends are serialised by a row lock on
        the job, so the outbox order of a job's messages is the order they were appended.
        Returns ``False`` when nothing was appended: duplicate id, a second ``eval_result``
        for the job, or a non-terminal status after the job finished.
        """
        return (await self.append_outbox_many([message]))[0]

    async def append_outbox_many(self, messages: Sequence[BaseModel]) -> list[bool]:
        """Append several messages in one transaction (e.g. a batch of telemetry)."""
        for message in messages:
            kind = getattr(message, "type", None)
            if kind not in OUTBOX_TYPES:
                raise UnsupportedMessageError(
                    f"message type {kind!r} does not go through the outbox "
                    f"(expected one of {sorted(OUTBOX_TYPES)})"
                )
        results: list[bool] = []
        async with self.engine.begin() as conn:
            locked: dict[str, Any] = {}
            for message in messages:
                job_id: str = message.job_id  # type: ignore[attr-defined]
                if job_id not in locked:
                    locked[job_id] = await _lock_job(conn, job_id)
                row = locked[job_id]
                appended, row = await self._append_locked(conn, row, message)
                locked[job_id] = row
                results.append(appended)
            if any(results):
                # delivered at commit: wakes the validator's sender (it also polls)
                await conn.execute(
                    text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL}
                )
        return results

    async def _append_locked(
        self, conn: AsyncConnection, row: Any, message: BaseModel
    ) -> tuple[bool, Any]:
        from kinitro.protocol.validator_ws import dump_message

        kind: str = message.type  # type: ignore[attr-defined]
        values: dict[str, Any] = {}
        if kind == "eval_result":
            if row.has_result:
                return False, row
            values = {"has_result": True, "state": str(message.state)}  # type: ignore[attr-defined]
        elif kind == "job_status":
            state = str(message.state)  # type: ignore[attr-defined]
            seq: int = message.seq  # type: ignore[attr-defined]
            if (row.state in _TERMINAL or row.has_result) and state not in _TERMINAL:
                return False, row
            if seq > row.status_seq:
                values = {
                    "state": state,
                    "status_seq": seq,
                    "episodes_done": message.episodes_done,  # type: ignore[attr-defined]
                    "episodes_total": message.episodes_total,  # type: ignore[attr-defined]
                    "detail": _pg_text(message.detail),  # type: ignore[attr-defined]
                }
        inserted = (
            await conn.execute(
                pg_insert(OutboxRow)
                .values(
                    message_id=message.id,  # type: ignore[attr-defined]
                    job_id=row.job_id,
                    type=kind,
                    payload=dump_message(message),  # type: ignore[arg-type]
                )
                .on_conflict_do_nothing(index_elements=[OutboxRow.message_id])
                .returning(OutboxRow.id)
            )
        ).scalar_one_or_none()
        if inserted is None:
            return False, row
        if values:
            values["updated_at"] = func.now()
            row = (
                await conn.execute(
                    update(JobRow)
                    .where(JobRow.job_id == row.job_id)
                    .values(values)
                    .returning(
                        JobRow.job_id,
                        JobRow.state,
                        JobRow.status_seq,
                        JobRow.has_result,
                        JobRow.episodes_done,
                        JobRow.episodes_total,
                    )
                )
            ).one()
        return True, row

    @contextlib.asynccontextmanager
    async def outbox_listener(
        self, on_append: Callable[[], None], *, retry_s: float = 1.0
    ) -> AsyncIterator[None]:
        """LISTEN on :data:`OUTBOX_CHANNEL` while the context is open; ``on_append()`` is
        called (on the event loop) after each committed append.

        The LISTEN connection heals itself: if it is lost, ``on_append()`` is called once
        (the caller re-reads the outbox) and the connection is re-opened every ``retry_s``
        until it works again. The first connection is opened before entering.
        """
        import asyncpg

        from kinitro.core.db import dsn

        target = dsn(self.engine.url.render_as_string(hide_password=False))

        def relay(*_: object) -> None:
            on_append()

        async def open_conn(lost: asyncio.Event) -> Any:
            conn = await asyncpg.connect(target)
            conn.add_termination_listener(lambda *_: lost.set())
            await conn.add_listener(OUTBOX_CHANNEL, relay)
            return conn

        async def keep_listening(conn: Any, lost: asyncio.Event) -> None:
            while True:
                await lost.wait()
                on_append()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
                while True:
                    await asyncio.sleep(retry_s)
                    lost = asyncio.Event()
                    try:
                        conn = await open_conn(lost)
                        holder[0] = conn
                        on_append()  # appends may have happened while deaf
                        break
                    except (OSError, asyncpg.PostgresError):
                        continue

        lost = asyncio.Event()
        holder = [await open_conn(lost)]
        task = asyncio.create_task(keep_listening(holder[0], lost), name="outbox-listen")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            with contextlib.suppress(Exception):
                await holder[0].close(timeout=2)

    async def pending_outbox(
        self, *, limit: int = 100, exclude: Iterable[str] = ()
    ) -> list[OutboxEntry]:
        """Unacked messages in send order (``outbox_id``; per job = append order).

        ``exclude``: message ids already in flight on the current connection.
        """
        query = select(OutboxRow).order_by(OutboxRow.id).limit(limit)
        excluded = list(exclude)
        if excluded:
            query = query.where(OutboxRow.message_id.not_in(excluded))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            OutboxEntry(
                outbox_id=r.id,
                message_id=r.message_id,
                job_id=r.job_id,
                type=r.type,
                payload=r.payload,
                created_at=r.created_at,
                send_count=r.send_count,
            )
            for r in rows
        ]

    async def mark_sent(self, message_ids: Sequence[str]) -> None:
        """Record a send attempt (for ``status`` and diagnostics)."""
        if not message_ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                update(OutboxRow)
                .where(OutboxRow.message_id.in_(list(message_ids)))
                .values(send_count=OutboxRow.send_count + 1, last_sent_at=func.now())
            )

    async def ack_outbox(self, message_id: str) -> bool:
        """The backend acknowledged ``message_id``: delete it. ``False`` if unknown."""
        return await self.ack_outbox_many([message_id]) == 1

    async def ack_outbox_many(self, message_ids: Sequence[str]) -> int:
        if not message_ids:
            return 0
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(OutboxRow)
                .where(OutboxRow.message_id.in_(list(message_ids)))
                .returning(OutboxRow.id)
            )
            return len(result.all())

    async def reject_outbox(
        self, message_id: str, *, error_code: str | None, detail: str | None
    ) -> bool:
        """The backend refused ``message_id`` for good: move it to the dead-letter table."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    delete(OutboxRow)
                    .where(OutboxRow.message_id == message_id)
                    .returning(
                        OutboxRow.message_id,
                        OutboxRow.job_id,
                        OutboxRow.type,
                        OutboxRow.payload,
                        OutboxRow.created_at,
                    )
                )
            ).one_or_none()
            if row is None:
                return False
            await conn.execute(
                pg_insert(OutboxDeadRow)
                .values(**row._asdict(), error_code=error_code, detail=_pg_text(detail))
                .on_conflict_do_nothing()
            )
            return True

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Messages the backend rejected for good, newest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(OutboxDeadRow).order_by(OutboxDeadRow.rejected_at.desc()).limit(limit)
                )
            ).all()
        return [
            DeadLetter(
                message_id=r.message_id,
                job_id=r.job_id,
                type=r.type,
                error_code=r.error_code,
                detail=r.detail,
                created_at=r.created_at,
                rejected_at=r.rejected_at,
            )
            for r in rows
        ]

    async def requeue_dead_letters(self, message_ids: Sequence[str] | None = None) -> int:
        """Move dead letters (all, or ``message_ids``) back to the outbox to be sent again,
        e.g. after a backend fix. Same message ids; they go to the end of the send order."""
        async with self.engine.begin() as conn:
            query = delete(OutboxDeadRow).returning(
                OutboxDeadRow.message_id,
                OutboxDeadRow.job_id,
                OutboxDeadRow.type,
                OutboxDeadRow.payload,
                OutboxDeadRow.created_at,
            )
            if message_ids is not None:
                query = query.where(OutboxDeadRow.message_id.in_(list(message_ids)))
            rows = (await conn.execute(query)).all()
            for row in rows:
                await conn.execute(
                    pg_insert(OutboxRow)
                    .values(**row._asdict())
                    .on_conflict_do_nothing(index_elements=[OutboxRow.message_id])
                )
            if rows:
                await conn.execute(
                    text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL}
                )
            return len(rows)

    # ------------------------------------------------------------------ weights

    async def record_weights(self, message: SetWeights) -> bool:
        """Store a ``set_weights`` (before acking it). ``False`` if already known."""
        async with self.engine.begin() as conn:
            inserted = (
                await conn.execute(
                    pg_insert(WeightsRow)
                    .values(
                        weights_id=message.weights_id,
                        message_id=message.id,
                        netuid=message.netuid,
                        weights={str(k): float(v) for k, v in message.weights.items()},
                        computed_at=message.computed_at,
                    )
                    .on_conflict_do_nothing(index_elements=[WeightsRow.weights_id])
                    .returning(WeightsRow.weights_id)
                )
            ).scalar_one_or_none()
            return inserted is not None

    async def next_pending_weights(self) -> WeightsEntry | None:
        """The newest pending weights; older pending ones are marked ``superseded``."""
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(WeightsRow)
                    .where(WeightsRow.status == "pending")
                    .order_by(WeightsRow.computed_at.desc(), WeightsRow.received_at.desc())
                    .with_for_update()
                )
            ).all()
            if not rows:
                return None
            newest_set = (
                await conn.execute(
                    select(func.max(WeightsRow.computed_at)).where(WeightsRow.status == "set")
                )
            ).scalar()
            if newest_set is not None and rows[0].computed_at <= newest_set:
                older = [r.weights_id for r in rows]  # all older than what is on chain
                rows = []
            else:
                older = [r.weights_id for r in rows[1:]]
            if older:
                await conn.execute(
                    update(WeightsRow)
                    .where(WeightsRow.weights_id.in_(older))
                    .values(status="superseded")
                )
            return _weights_entry(rows[0]) if rows else None

    async def weights_attempt_failed(self, weights_id: str, error: str, *, give_up: bool) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(WeightsRow)
                .where(WeightsRow.weights_id == weights_id)
                .values(
                    attempts=WeightsRow.attempts + 1,
                    error=error[:2000],
                    status="failed" if give_up else WeightsRow.status,
                )
            )

    async def weights_set(self, weights_id: str, block: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(WeightsRow)
                .where(WeightsRow.weights_id == weights_id)
                .values(
                    status="set",
                    block=block,
                    set_at=func.now(),
                    attempts=WeightsRow.attempts + 1,
                    error=None,
                )
            )

    async def last_weights_set(self) -> WeightsEntry | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(WeightsRow)
                    .where(WeightsRow.status == "set")
                    .order_by(WeightsRow.set_at.desc())
                    .limit(1)
                )
            ).one_or_none()
        return None if row is None else _weights_entry(row)

    # ------------------------------------------------------------------ connection

    async def set_connection(self, state: str, **fields: Any) -> None:
        """Upsert the single connection row (``state`` + any :class:`ConnectionInfo` field)."""
        allowed = set(ConnectionInfo.__dataclass_fields__) - {"state", "updated_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise JobQueueError(f"unknown connection fields {sorted(unknown)}")
        values = {"state": state, **fields, "pid": fields.get("pid", os.getpid())}
        async with self.engine.begin() as conn:
            stmt = pg_insert(ConnectionRow).values(id=1, **values)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[ConnectionRow.id], set_={**values, "updated_at": func.now()}
                )
            )

    async def connection(self) -> ConnectionInfo:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(ConnectionRow).where(ConnectionRow.id == 1))
            ).one_or_none()
        if row is None:
            return ConnectionInfo()
        return ConnectionInfo(
            **{name: getattr(row, name) for name in ConnectionInfo.__dataclass_fields__}
        )

    # ------------------------------------------------------------------ status

    async def depths(self) -> QueueDepths:
        async with self.engine.connect() as conn:
            pgq = (
                await conn.execute(
                    text(
                        "SELECT status::text AS status, count(*) AS n FROM pgqueuer "
                        "WHERE entrypoint = :ep GROUP BY status"
                    ),
                    {"ep": EVAL_JOB_ENTRYPOINT},
                )
            ).all()
            counts = {r.status: r.n for r in pgq}
            outbox = (
                await conn.execute(select(func.count(), func.min(OutboxRow.created_at)))
            ).one()
            dead = (await conn.execute(select(func.count()).select_from(OutboxDeadRow))).scalar()
            by_state = (
                await conn.execute(select(JobRow.state, func.count()).group_by(JobRow.state))
            ).all()
        return QueueDepths(
            jobs_queued=counts.get("queued", 0),
            jobs_in_flight=counts.get("picked", 0),
            outbox=outbox[0],
            outbox_oldest_at=outbox[1],
            outbox_dead=dead or 0,
            jobs_by_state={state: n for state, n in by_state},
        )

    async def status(self) -> ValidatorStatus:
        async with self.engine.connect() as conn:
            pending = (
                await conn.execute(
                    select(func.count())
                    .select_from(WeightsRow)
                    .where(WeightsRow.status == "pending")
                )
            ).scalar()
        return ValidatorStatus(
            connection=await self.connection(),
            depths=await self.depths(),
            last_weights=await self.last_weights_set(),
            pending_weights=pending or 0,
        )


# ---------------------------------------------------------------------- helpers


def job_id_from_payload(payload: bytes | None) -> str:
    """The job id carried by a pgqueuer ``eval_job`` job's payload."""
    if not payload:
        raise JobQueueError("pgqueuer eval_job without payload")
    return payload.decode()


async def _lock_job(conn: AsyncConnection, job_id: str) -> Any:
    row = (
        await conn.execute(
            select(
                JobRow.job_id,
                JobRow.state,
                JobRow.status_seq,
                JobRow.has_result,
                JobRow.episodes_done,
                JobRow.episodes_total,
            )
            .where(JobRow.job_id == job_id)
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise JobNotFoundError(job_id)
    return row


async def _raw_asyncpg(conn: AsyncConnection) -> Any:
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def _pgq_enqueue(conn: AsyncConnection, job_id: str) -> None:
    """Queue ``job_id`` for the evaluator inside ``conn``'s open transaction."""
    from pgqueuer.adapters.persistence.queries import Queries

    queries = Queries.from_asyncpg_connection(await _raw_asyncpg(conn))
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


def _weights_entry(row: Any) -> WeightsEntry:
    return WeightsEntry(
        weights_id=row.weights_id,
        netuid=row.netuid,
        weights={int(k): float(v) for k, v in row.weights.items()},
        computed_at=row.computed_at,
        received_at=row.received_at,
        status=row.status,
        attempts=row.attempts,
        block=row.block,
        set_at=row.set_at,
        error=row.error,
    )


__all__ = [
    "OUTBOX_CHANNEL",
    "OUTBOX_TYPES",
    "ConnectionInfo",
    "DeadLetter",
    "EnqueueOutcome",
    "JobQueue",
    "JobRecord",
    "OutboxEntry",
    "QueueDepths",
    "ValidatorStatus",
    "WeightsEntry",
    "job_id_from_payload",
]


def _pg_text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: agent-supplied text keeps U+FFFD in its place."""
    return None if value is None else value.replace("\x00", "\ufffd")
