"""Outbox sender: forwards ``vq_outbox`` rows to the backend, deletes them on its ack.

Guarantees (see ``docs/validator.md``):

* **Order per job**: rows are sent in ``outbox_id`` order, which per job is the order the
  evaluator appended them (appends of one job are serialised by a row lock). One ordered
  WebSocket carries them, so the backend receives a job's messages in order.
* **At least once**: a row is deleted only after the backend acks its message id. Rows sent
  on a connection that dies before the ack are sent again on the next connection (the
  in-flight set is per connection). Restarts lose nothing: the rows are in PostgreSQL.
* **Backpressure**: at most ``window`` messages are unacked at any time; the sender waits
  for acks before reading more rows. The evaluator is never blocked — the outbox absorbs
  bursts durably.
* **Stuck acks**: if the oldest in-flight message is unacked for ``ack_timeout_s``, the
  session is dropped and re-established, which resends everything unacked.
* **Nacks**: a retryable error code (``unavailable``, ``rate_limited``, ``internal_error``,
  ``deadline_exceeded``) resends the message after ``nack_retry_s``; any other code means
  the backend will never accept it, so it moves to ``vq_outbox_dead`` (kept, visible in
  ``validator status``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kinitro.jobqueue import OutboxEntry, OutboxFeed
from kinitro.protocol.common import ErrorCode
from kinitro.validator.errors import SessionError

log = logging.getLogger(__name__)

RETRYABLE_CODES = frozenset(
    {
        ErrorCode.UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.INTERNAL_ERROR,
        ErrorCode.DEADLINE_EXCEEDED,
        ErrorCode.AUTH_REQUIRED,
    }
)


@dataclass(slots=True)
class SenderStats:
    sent: int = 0
    acked: int = 0
    nacked: int = 0
    dead: int = 0


@dataclass(slots=True)
class _Nack:
    message_id: str
    code: str | None
    detail: str | None


@dataclass
class OutboxSender:
    """One per connection. ``run()`` until the connection ends; feed it ``on_ack``."""

    jq: OutboxFeed
    send: Callable[[str], Awaitable[None]]
    window: int = 64
    poll_s: float = 0.2
    nack_retry_s: float = 2.0
    ack_timeout_s: float = 30.0
    stats: SenderStats = field(default_factory=SenderStats)
    inflight: dict[str, OutboxEntry] = field(default_factory=dict)
    _acked: list[str] = field(default_factory=list)
    _nacked: list[_Nack] = field(default_factory=list)
    _deferred: dict[str, float] = field(default_factory=dict)
    _sent_at: dict[str, float] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        """New rows were appended (NOTIFY from the evaluator's transaction)."""
        self._wake.set()

    def on_ack(self, message_id: str, ok: bool, code: str | None, detail: str | None) -> bool:
        """Record the backend's answer for ``message_id`` (called by the reader; no I/O).

        Returns False when the id is not in flight on this connection (still honoured:
        an ok-ack deletes the row, the backend has stored it).
        """
        known = self.inflight.pop(message_id, None) is not None
        self._sent_at.pop(message_id, None)
        if ok:
            self._acked.append(message_id)
        else:
            self._nacked.append(_Nack(message_id, code, detail))
        self._wake.set()
        return known

    async def flush(self) -> None:
        """Apply recorded acks/nacks to the database."""
        acked, self._acked = self._acked, []
        if acked:
            await self.jq.ack_outbox_many(acked)
            self.stats.acked += len(acked)
        nacked, self._nacked = self._nacked, []
        for nack in nacked:
            self.stats.nacked += 1
            if nack.code in RETRYABLE_CODES or nack.code is None:
                self._deferred[nack.message_id] = time.monotonic() + self.nack_retry_s
                log.warning(
                    "backend nacked message; will resend",
                    extra={"message_id": nack.message_id, "code": nack.code},
                )
            else:
                self.stats.dead += 1
                await self.jq.reject_outbox(
                    nack.message_id, error_code=nack.code, detail=nack.detail
                )
                log.error(
                    "backend rejected message for good; moved to dead letters",
                    extra={"message_id": nack.message_id, "code": nack.code, "detail": nack.detail},
                )

    def _excluded(self) -> list[str]:
        now = time.monotonic()
        for message_id, not_before in list(self._deferred.items()):
            if not_before <= now:
                del self._deferred[message_id]
        return [*self.inflight, *self._deferred]

    def _check_ack_timeout(self) -> None:
        if not self._sent_at:
            return
        oldest = min(self._sent_at.values())
        if time.monotonic() - oldest > self.ack_timeout_s:
            raise SessionError(
                f"backend did not ack within {self.ack_timeout_s:g}s "
                f"({len(self.inflight)} messages in flight); reconnecting to resend"
            )

    async def run(self) -> None:
        while True:
            await self.flush()
            free = self.window - len(self.inflight)
            if free > 0:
                batch = await self.jq.pending_outbox(limit=free, exclude=self._excluded())
                for entry in batch:
                    self.inflight[entry.message_id] = entry
                    self._sent_at[entry.message_id] = time.monotonic()
                    await self.send(entry.payload)
                if batch:
                    self.stats.sent += len(batch)
                    await self.jq.mark_sent([e.message_id for e in batch])
                    continue  # look again: more rows, or a full window waits below
            self._check_ack_timeout()
            self._wake.clear()
            if self._acked or self._nacked:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
