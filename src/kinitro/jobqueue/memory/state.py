"""Shared state of the in-memory twin: the rows, the queue, the simulated outages."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pgqueuer.adapters.inmemory import InMemoryDriver, InMemoryQueries

from kinitro.jobqueue.errors import JobNotFoundError
from kinitro.jobqueue.records import (
    DeadLetter,
    JobRecord,
    OutboxEntry,
    WeightsEntry,
)
from kinitro.protocol.common import JobState


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class StoredJob:
    job_id: str
    attempt: int
    payload: dict[str, Any]
    state: str = JobState.QUEUED.value
    status_seq: int = 0
    episodes_done: int = 0
    episodes_total: int = 0
    detail: str | None = None
    has_result: bool = False
    received_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def record(self) -> JobRecord:
        return JobRecord(**{**dataclasses.asdict(self), "state": JobState(self.state)})


@dataclass(slots=True)
class StoredMessage:
    """An outbox row: the entry plus when it was last sent."""

    entry: OutboxEntry
    last_sent_at: datetime | None = None


@dataclass(slots=True)
class StoredWeights:
    entry: WeightsEntry
    order: int  # insertion order: the tie-break PostgreSQL gets from received_at


class MemoryState:
    """The twin's tables (one instance shared by every part of :class:`MemoryJobQueue`)."""

    def __init__(self) -> None:
        self.queries = InMemoryQueries(driver=InMemoryDriver())
        """pgqueuer's in-memory queue (tests may inspect it, or clear it to lose entries)."""
        self._lock = asyncio.Lock()
        self._jobs: dict[str, StoredJob] = {}
        self._outbox: dict[str, StoredMessage] = {}  # by message id, in outbox id order
        self._dead: dict[str, tuple[DeadLetter, str]] = {}  # + payload
        self._weights: dict[str, StoredWeights] = {}
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

    def _job(self, job_id: str) -> StoredJob:
        row = self._jobs.get(job_id)
        if row is None:
            raise JobNotFoundError(job_id)
        return row
