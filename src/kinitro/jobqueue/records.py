"""The values the validator database hands out, the same from both adapters.

Frozen dataclasses (pydantic stays at the wire edge): what a job, an outbox row, a
dead letter, a weights row and the connection row look like to their users, plus the
two constants both adapters share (which messages the outbox carries, and the NOTIFY
channel that wakes the sender).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from kinitro.protocol.common import JobState
from kinitro.protocol.validator_ws import EvalJob

#: Message types the outbox carries (everything the evaluator produces for the backend).
OUTBOX_TYPES = frozenset({"job_status", "eval_result", "episode", "episode_steps"})

#: PostgreSQL NOTIFY channel signalled (at commit) whenever outbox rows are appended.
OUTBOX_CHANNEL = "kinitro_outbox"

TERMINAL_STATES = frozenset(s.value for s in JobState if s.is_terminal)


class EnqueueOutcome(StrEnum):
    """What ``enqueue_job`` did."""

    CREATED = "created"  # new job: row + queue entry written
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
    reveal_block: int | None = None
    """Commit-reveal subnets: the block the chain reveals the last commit at."""
    refreshes: int = 0
    """Times these weights were set again unchanged (every ``weights_interval``)."""


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


#: Fields ``set_connection`` accepts besides ``state``.
CONNECTION_FIELDS = frozenset(ConnectionInfo.__dataclass_fields__) - {"state", "updated_at"}


@dataclass(frozen=True, slots=True)
class QueueDepths:
    jobs_queued: int = 0  # queue entries waiting for an evaluator
    jobs_in_flight: int = 0  # queue entries picked by an evaluator
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


def safe_text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: agent-supplied text keeps U+FFFD in its place.

    Both adapters store text this way, so a record reads the same from either."""
    return None if value is None else value.replace("\x00", "\ufffd")
