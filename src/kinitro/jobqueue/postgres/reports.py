"""The evaluator's reports into the PostgreSQL outbox: statuses, results, telemetry.

Appends of one job take a row lock on its ``vq_jobs`` row, so per job the outbox id order
is the append order; the job row follows its latest status, and the first ``eval_result``
wins. Every appending transaction sends ``NOTIFY kinitro_outbox`` (delivered at commit)
to wake the validator's sender.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from kinitro.jobqueue.errors import JobNotFoundError
from kinitro.jobqueue.models import JobRow, OutboxRow
from kinitro.jobqueue.ports import OutboxMessage
from kinitro.jobqueue.records import OUTBOX_CHANNEL, safe_text
from kinitro.jobqueue.rules import check_outbox_types, job_row_update, next_status
from kinitro.protocol.common import JobState
from kinitro.protocol.validator_ws import JobStatus, dump_message

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

_LOCKED = (
    JobRow.job_id,
    JobRow.state,
    JobRow.status_seq,
    JobRow.has_result,
    JobRow.episodes_done,
    JobRow.episodes_total,
)


class PostgresReports:
    engine: AsyncEngine

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
        async with self.engine.begin() as conn:
            row = await _lock_job(conn, job_id)
            message = next_status(
                row,
                job_id,
                state,
                episodes_done=episodes_done,
                episodes_total=episodes_total,
                detail=detail,
            )
            if message is None:
                return None
            await _append_locked(conn, row, message)
            await _notify(conn)
            return message

    async def append_outbox(self, message: OutboxMessage) -> bool:
        """Append one evaluator message (job_status, eval_result, episode, episode_steps).

        Idempotent on the message id. Returns ``False`` when nothing was appended:
        duplicate id, a second ``eval_result`` for the job, or a non-terminal status
        after the job finished.
        """
        return (await self.append_outbox_many([message]))[0]

    async def append_outbox_many(self, messages: Sequence[OutboxMessage]) -> list[bool]:
        """Append several messages in one transaction (e.g. a batch of telemetry)."""
        check_outbox_types(messages)
        results: list[bool] = []
        async with self.engine.begin() as conn:
            locked: dict[str, Any] = {}
            for message in messages:
                if message.job_id not in locked:
                    locked[message.job_id] = await _lock_job(conn, message.job_id)
                appended, locked[message.job_id] = await _append_locked(
                    conn, locked[message.job_id], message
                )
                results.append(appended)
            if any(results):
                await _notify(conn)  # delivered at commit: wakes the sender (it also polls)
        return results


async def _lock_job(conn: AsyncConnection, job_id: str) -> Any:
    row = (
        await conn.execute(select(*_LOCKED).where(JobRow.job_id == job_id).with_for_update())
    ).one_or_none()
    if row is None:
        raise JobNotFoundError(job_id)
    return row


async def _append_locked(
    conn: AsyncConnection, row: Any, message: OutboxMessage
) -> tuple[bool, Any]:
    changes = job_row_update(row, message)
    if changes is None:
        return False, row
    inserted = (
        await conn.execute(
            pg_insert(OutboxRow)
            .values(
                message_id=message.id,
                job_id=row.job_id,
                type=message.type,
                payload=dump_message(message),
            )
            .on_conflict_do_nothing(index_elements=[OutboxRow.message_id])
            .returning(OutboxRow.id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        return False, row
    if changes:
        if "detail" in changes:
            changes["detail"] = safe_text(changes["detail"])
        row = (
            await conn.execute(
                update(JobRow)
                .where(JobRow.job_id == row.job_id)
                .values({**changes, "updated_at": func.now()})
                .returning(*_LOCKED)
            )
        ).one()
    return True, row


async def _notify(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
