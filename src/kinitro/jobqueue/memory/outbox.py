"""The twin's outbox: the evaluator's reports in, the node's sender out (same rules)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from kinitro.jobqueue.memory.state import MemoryState, StoredJob, StoredMessage, utcnow
from kinitro.jobqueue.ports import OutboxMessage
from kinitro.jobqueue.records import (
    DeadLetter,
    OutboxEntry,
    safe_text,
)
from kinitro.jobqueue.rules import check_outbox_types, job_row_update, next_status
from kinitro.protocol.common import JobState
from kinitro.protocol.validator_ws import JobStatus, dump_message


class MemoryOutbox(MemoryState):
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
        check_outbox_types([message])
        self._io("append_outbox")
        return self._append([message])[0]

    async def append_outbox_many(self, messages: Sequence[OutboxMessage]) -> list[bool]:
        check_outbox_types(messages)
        self._io("append_outbox_many")
        return self._append(messages)

    def _append(self, messages: Sequence[OutboxMessage]) -> list[bool]:
        staged = self._stage(messages)
        self._commit(staged)
        return staged[2]

    def _stage(
        self, messages: Sequence[OutboxMessage]
    ) -> tuple[dict[str, StoredJob], list[OutboxEntry], list[bool]]:
        """Apply ``messages`` to copies (raises before anything changed)."""
        rows: dict[str, StoredJob] = {}
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
                created_at=utcnow(),
                send_count=0,
            )
            for name, value in changes.items():
                setattr(row, name, safe_text(value) if name == "detail" else value)
            if changes:
                row.updated_at = utcnow()
            appended.append(True)
        return rows, list(entries.values()), appended

    def _commit(self, staged: tuple[dict[str, StoredJob], list[OutboxEntry], list[bool]]) -> None:
        rows, entries, _ = staged
        self._jobs.update(rows)
        self._outbox.update((e.message_id, StoredMessage(e)) for e in entries)
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
                sent.last_sent_at = utcnow()

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
            e.message_id, e.job_id, e.type, error_code, safe_text(detail), e.created_at, utcnow()
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
                self._outbox[message_id] = StoredMessage(entry)
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
