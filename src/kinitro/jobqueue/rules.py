"""The outbox rules both adapters apply, written once.

What an appended message does to its job: a ``job_status`` moves the job's state (if its
``seq`` is newer) and is dropped after a terminal state; the first ``eval_result`` marks
the job finished and any later one is dropped. Telemetry leaves the job row alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from kinitro.jobqueue.errors import UnsupportedMessageError
from kinitro.jobqueue.records import OUTBOX_TYPES, TERMINAL_STATES
from kinitro.protocol.common import JobState
from kinitro.protocol.validator_ws import EvalResult, JobStatus


class JobRowState(Protocol):
    """The part of a job row the rules read."""

    @property
    def state(self) -> str: ...

    @property
    def status_seq(self) -> int: ...

    @property
    def has_result(self) -> bool: ...


def check_outbox_types(messages: Sequence[object]) -> None:
    """Refuse anything that is not evaluator output (before touching the database)."""
    for message in messages:
        kind = getattr(message, "type", None)
        if kind not in OUTBOX_TYPES:
            raise UnsupportedMessageError(
                f"message type {kind!r} does not go through the outbox "
                f"(expected one of {sorted(OUTBOX_TYPES)})"
            )


def job_row_update(row: JobRowState, message: object) -> dict[str, Any] | None:
    """Columns of the job row that appending ``message`` changes; ``None``: drop it."""
    match message:
        case EvalResult():
            if row.has_result:
                return None
            return {"has_result": True, "state": str(message.state)}
        case JobStatus():
            state = str(message.state)
            if (row.state in TERMINAL_STATES or row.has_result) and state not in TERMINAL_STATES:
                return None
            if message.seq <= row.status_seq:
                return {}
            return {
                "state": state,
                "status_seq": message.seq,
                "episodes_done": message.episodes_done,
                "episodes_total": message.episodes_total,
                "detail": message.detail,
            }
        case _:
            return {}


class _StatusRow(JobRowState, Protocol):
    @property
    def episodes_done(self) -> int: ...

    @property
    def episodes_total(self) -> int: ...


def next_status(
    row: _StatusRow,
    job_id: str,
    state: JobState,
    *,
    episodes_done: int | None,
    episodes_total: int | None,
    detail: str | None,
) -> JobStatus | None:
    """The ``job_status`` to append for ``report_status`` (the job's next ``seq``; progress
    counters default to the row's), or ``None`` once the job is finished."""
    if row.state in TERMINAL_STATES or row.has_result:
        return None
    return JobStatus(
        job_id=job_id,
        state=state,
        seq=row.status_seq + 1,
        detail=detail,
        episodes_done=row.episodes_done if episodes_done is None else episodes_done,
        episodes_total=row.episodes_total if episodes_total is None else episodes_total,
        at=datetime.now(UTC),
    )
