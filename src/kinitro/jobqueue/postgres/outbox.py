"""The sending side of the PostgreSQL outbox (the validator node's outbox sender).

Rows are read in ``id`` order (per job: append order), deleted only when the backend
acks their message id, or moved to ``vq_outbox_dead`` when it refuses them for good.
:meth:`PostgresOutbox.outbox_listener` wakes the sender on ``NOTIFY kinitro_outbox``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from kinitro.core.db import dsn
from kinitro.jobqueue.models import OutboxDeadRow, OutboxRow
from kinitro.jobqueue.records import OUTBOX_CHANNEL, DeadLetter, OutboxEntry, safe_text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

_MOVED = (
    OutboxRow.message_id,
    OutboxRow.job_id,
    OutboxRow.type,
    OutboxRow.payload,
    OutboxRow.created_at,
)


class PostgresOutbox:
    engine: AsyncEngine

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
                    delete(OutboxRow).where(OutboxRow.message_id == message_id).returning(*_MOVED)
                )
            ).one_or_none()
            if row is None:
                return False
            await conn.execute(
                pg_insert(OutboxDeadRow)
                .values(**row._asdict(), error_code=error_code, detail=safe_text(detail))
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
