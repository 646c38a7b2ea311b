"""Public realtime WebSocket protocol (``/ws/realtime``) for dashboards and watchers.

Client → server (:data:`ClientMessage`, parse with :func:`parse_client_message`):

* ``subscribe`` {event_types, filters} — sets the connection's (single) subscription,
  replacing any previous one; the server answers with one ``snapshot`` (``ref_id`` = the
  subscribe ``id``), then streams matching ``event`` messages in commit order.
* ``unsubscribe`` — clears the subscription (no more events).
* ``ping`` — the server answers ``pong`` (``ref_id`` = the ping ``id``).

Server → client (:data:`ServerMessage`, :func:`parse_server_message`):

* ``snapshot`` {ref_id, data} — current state: the backend's REST views
  (:class:`~kinitro.protocol.views.SnapshotData`: ``competitions``, ``leaderboards``,
  ``recent_submissions``, ``live_jobs``, ``validators``, ``latest_weights``, ``stats``).
* ``events`` {events} — one or more typed payloads (:data:`RealtimeEvent`), in commit
  order, discriminated by ``event_type``; every payload has ``at`` (when it happened,
  UTC). The server coalesces the events of a short tick into one frame, so a busy feed
  costs a client tens of frames a second, not hundreds.
* ``pong`` {ref_id}, ``error`` {code, message, ref_id}.

Realtime messages are notifications, not state changes: nothing is acked; a client that
reconnects subscribes again and gets a fresh snapshot, so nothing missed is lost. Close
codes: :data:`CLOSE_SLOW_CONSUMER` (the client fell behind: re-subscribe),
:data:`CLOSE_RESUBSCRIBE` (the server's event stream restarted: re-subscribe),
:data:`CLOSE_OVERLOADED` (the replica holds as many clients as it serves: retry later,
with backoff), :data:`CLOSE_TOO_MANY_FROM_ADDRESS` (this address holds as many sockets as
it may), 1001 (the server is shutting down).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import Field, JsonValue, StringConstraints, TypeAdapter

from kinitro.protocol._codec import decode_json_frame, dump_json
from kinitro.protocol.common import (
    ArtifactRef,
    CompetitionId,
    ErrorCode,
    EvalMetrics,
    FailureCause,
    Hotkey,
    IdentifiedMessage,
    Identifier,
    JobState,
    MessageId,
    NonNegFloat,
    NonNegInt,
    Probability,
    TaskName,
    Uid,
    UtcDatetime,
    WireModel,
    new_message_id,
)
from kinitro.protocol.views import QuorumProgress, SnapshotData

MAX_CLIENT_FRAME_BYTES: Final = 64 * 1024
"""Largest frame a client may send."""
MAX_SERVER_FRAME_BYTES: Final = 4 * 1024 * 1024
"""Largest frame the server sends (snapshots)."""

CLOSE_SLOW_CONSUMER: Final = 1008
CLOSE_RESUBSCRIBE: Final = 1012
CLOSE_OVERLOADED: Final = 1013
CLOSE_TOO_MANY_FROM_ADDRESS: Final = 4429

Text = Annotated[str, StringConstraints(max_length=4096)]
BenchmarkId = Annotated[str, StringConstraints(min_length=1, max_length=96)]
MediaKey = Annotated[str, StringConstraints(min_length=1, max_length=512)]
ReasonCode = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
]


class EventType(StrEnum):
    """Every realtime event type (the ``event_type`` discriminator)."""

    SUBMISSION_RECEIVED = "submission_received"
    SUBMISSION_REJECTED = "submission_rejected"
    JOB_CREATED = "job_created"
    JOB_STATUS = "job_status"
    EPISODE_COMPLETED = "episode_completed"
    EVALUATION_COMPLETED = "evaluation_completed"
    LEADERBOARD_UPDATED = "leaderboard_updated"
    WEIGHTS_UPDATED = "weights_updated"
    VALIDATOR_CONNECTED = "validator_connected"
    VALIDATOR_DISCONNECTED = "validator_disconnected"
    STATS = "stats"


# ------------------------------------------------------------ event payloads


class _Event(WireModel):
    at: UtcDatetime


class SubmissionReceivedEvent(_Event):
    """A new commitment was recorded as a submission (``competition_id`` is ``None`` when
    the commitment names no known competition; a ``submission_rejected`` follows)."""

    event_type: Literal["submission_received"] = "submission_received"
    submission_id: Identifier
    competition_id: CompetitionId | None = None
    miner_hotkey: Hotkey
    miner_uid: Uid | None = None
    commitment_block: NonNegInt | None = None
    artifact: ArtifactRef | None = None


class SubmissionRejectedEvent(_Event):
    """A commitment or artifact was refused.

    ``reason`` is a short machine-readable code (``invalid_commitment``,
    ``unknown_competition``, ``artifact_too_large``, ``sha256_mismatch`` …), ``detail``
    the human explanation.
    """

    event_type: Literal["submission_rejected"] = "submission_rejected"
    miner_hotkey: Hotkey
    reason: ReasonCode
    detail: Text | None = None
    submission_id: Identifier | None = None
    competition_id: CompetitionId | None = None
    miner_uid: Uid | None = None
    commitment_block: NonNegInt | None = None


class JobCreatedEvent(_Event):
    """The scheduler created an evaluation job (``validator_hotkey`` once assigned)."""

    event_type: Literal["job_created"] = "job_created"
    job_id: Identifier
    submission_id: Identifier
    competition_id: CompetitionId
    miner_hotkey: Hotkey
    benchmark_id: BenchmarkId
    validator_hotkey: Hotkey | None = None


class JobStatusEvent(_Event):
    """A validator reported a job state / progress change."""

    event_type: Literal["job_status"] = "job_status"
    job_id: Identifier
    validator_hotkey: Hotkey
    competition_id: CompetitionId
    miner_hotkey: Hotkey
    submission_id: Identifier | None = None
    state: JobState
    episodes_done: NonNegInt = 0
    episodes_total: NonNegInt = 0
    detail: Text | None = None


class EpisodeCompletedEvent(_Event):
    """A validator reported one finished episode."""

    event_type: Literal["episode_completed"] = "episode_completed"
    job_id: Identifier
    validator_hotkey: Hotkey
    competition_id: CompetitionId
    miner_hotkey: Hotkey
    submission_id: Identifier | None = None
    episode_index: NonNegInt
    task: TaskName
    success: bool
    total_reward: float
    steps: NonNegInt
    failure_cause: FailureCause | None = None
    media_refs: Annotated[list[MediaKey], Field(max_length=64)] = Field(default_factory=list)
    sealed_until: UtcDatetime | None = None
    """Until when its seed, action log, step samples and failure detail are sealed (the
    round's end; None: the round is revealed)."""


class EvaluationCompletedEvent(_Event):
    """A validator delivered a job's final result.

    ``state`` is that validator's terminal state; ``job_state`` the job's overall state
    once the backend settled it (``None`` while other validators are still running).
    """

    event_type: Literal["evaluation_completed"] = "evaluation_completed"
    job_id: Identifier
    validator_hotkey: Hotkey
    competition_id: CompetitionId
    miner_hotkey: Hotkey
    submission_id: Identifier | None = None
    state: JobState
    job_state: JobState | None = None
    success_rate: Probability | None = None
    metrics: EvalMetrics | None = None


class LeaderboardEntry(WireModel):
    """One row of a competition leaderboard (optional fields: not yet known)."""

    rank: Annotated[int, Field(ge=1)]
    submission_id: Identifier
    miner_hotkey: Hotkey
    miner_uid: Uid | None = None
    success_rate: Probability | None = None
    ci_low: Probability | None = None
    ci_high: Probability | None = None
    score: float | None = None
    episodes: NonNegInt | None = None
    validators: NonNegInt | None = None
    eligible: bool | None = None
    quorum: QuorumProgress | None = None
    is_leader: bool = False


class LeaderboardUpdatedEvent(_Event):
    """Scores of a competition were recomputed (``entries`` may be omitted: then fetch the
    leaderboard over REST)."""

    event_type: Literal["leaderboard_updated"] = "leaderboard_updated"
    competition_id: CompetitionId
    leader_submission_id: Identifier | None = None
    leader_hotkey: Hotkey | None = None
    entries: Annotated[list[LeaderboardEntry], Field(max_length=1024)] = Field(default_factory=list)


class WeightsUpdatedEvent(_Event):
    """New weights were computed (``validator_hotkey`` set when a validator set them)."""

    event_type: Literal["weights_updated"] = "weights_updated"
    weights_id: Identifier
    netuid: Uid | None = None
    weights: dict[Uid, NonNegFloat]
    validator_hotkey: Hotkey | None = None


class ValidatorConnectedEvent(_Event):
    """A validator authenticated on ``/ws/validator``."""

    event_type: Literal["validator_connected"] = "validator_connected"
    validator_hotkey: Hotkey
    uid: Uid | None = None
    lite: bool = False


class ValidatorDisconnectedEvent(_Event):
    """A validator's session ended (closed, or its heartbeat lease expired)."""

    event_type: Literal["validator_disconnected"] = "validator_disconnected"
    validator_hotkey: Hotkey
    uid: Uid | None = None
    reason: Text | None = None


class StatsEvent(_Event):
    """Platform counters changed; ``stats`` is the body of ``GET /api/v1/stats``
    (``submissions`` / ``jobs`` counts by status, ``validators_connected`` …)."""

    event_type: Literal["stats"] = "stats"
    stats: dict[str, JsonValue]
    """A :class:`~kinitro.protocol.views.Stats` (its JSON schema, :func:`snapshot_schema`),
    parsed as plain JSON like a snapshot's ``data``."""


RealtimeEvent = Annotated[
    SubmissionReceivedEvent
    | SubmissionRejectedEvent
    | JobCreatedEvent
    | JobStatusEvent
    | EpisodeCompletedEvent
    | EvaluationCompletedEvent
    | LeaderboardUpdatedEvent
    | WeightsUpdatedEvent
    | ValidatorConnectedEvent
    | ValidatorDisconnectedEvent
    | StatsEvent,
    Field(discriminator="event_type"),
]
"""Every realtime event payload, discriminated by ``event_type``."""


# ------------------------------------------------------------------ filters


class EventFilter(WireModel):
    """Restricts a subscription to events about one competition / miner / job / validator
    / submission.

    Each set field must equal the event's field of the same name. An event that does not
    carry the field (e.g. ``stats`` for a ``job_id`` filter), or carries it as ``None``,
    is not about that entity and does not match. An empty filter matches everything.
    """

    competition_id: CompetitionId | None = None
    miner_hotkey: Hotkey | None = None
    job_id: Identifier | None = None
    validator_hotkey: Hotkey | None = None
    submission_id: Identifier | None = None

    def matches(self, event: RealtimeEvent) -> bool:
        """True when ``event`` passes every set field of this filter."""
        for name, wanted in self:
            if wanted is not None and getattr(event, name, None) != wanted:
                return False
        return True

    @property
    def is_empty(self) -> bool:
        """True when nothing is filtered."""
        return all(value is None for _, value in self)


# ---------------------------------------------------------- client → server


class Subscribe(IdentifiedMessage):
    """Subscribe to ``event_types`` (empty = all) passing ``filters``.

    Replaces the connection's previous subscription, so re-sending is harmless.
    """

    type: Literal["subscribe"] = "subscribe"
    event_types: Annotated[list[EventType], Field(max_length=len(EventType))] = Field(
        default_factory=list
    )
    filters: EventFilter = Field(default_factory=EventFilter)

    def matches(self, event: RealtimeEvent) -> bool:
        """True when ``event`` should be delivered to this subscription."""
        if self.event_types and event.event_type not in self.event_types:
            return False
        return self.filters.matches(event)


class Unsubscribe(IdentifiedMessage):
    """Clear the connection's subscription."""

    type: Literal["unsubscribe"] = "unsubscribe"


class Ping(IdentifiedMessage):
    """Keep-alive; the server answers ``pong`` with ``ref_id`` = this ``id``."""

    type: Literal["ping"] = "ping"


ClientMessage = Annotated[Subscribe | Unsubscribe | Ping, Field(discriminator="type")]
"""Every message a realtime client may send."""


# ---------------------------------------------------------- server → client


class Snapshot(IdentifiedMessage):
    """Current state, answering subscribe ``ref_id`` (see the module docstring)."""

    type: Literal["snapshot"] = "snapshot"
    ref_id: MessageId | None = None
    data: dict[str, JsonValue]
    """A :class:`~kinitro.protocol.views.SnapshotData` (the server builds it typed; its
    JSON schema is that one, see :func:`snapshot_schema`). Parsed as plain JSON, so that a
    client older than the server still reads the keys it knows."""


class Events(IdentifiedMessage):
    """Realtime events in commit order (those of one server tick)."""

    type: Literal["events"] = "events"
    events: Annotated[list[RealtimeEvent], Field(min_length=1)]


class Pong(IdentifiedMessage):
    """Answer to the ``ping`` whose id is ``ref_id``."""

    type: Literal["pong"] = "pong"
    ref_id: MessageId | None = None


class ErrorMessage(IdentifiedMessage):
    """A typed error, about client message ``ref_id`` when there is one."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: Text
    ref_id: MessageId | None = None


ServerMessage = Annotated[Snapshot | Events | Pong | ErrorMessage, Field(discriminator="type")]
"""Every message the realtime server sends."""


CLIENT_MESSAGE_ADAPTER: Final[TypeAdapter[ClientMessage]] = TypeAdapter(ClientMessage)
SERVER_MESSAGE_ADAPTER: Final[TypeAdapter[ServerMessage]] = TypeAdapter(ServerMessage)
EVENT_ADAPTER: Final[TypeAdapter[RealtimeEvent]] = TypeAdapter(RealtimeEvent)


def parse_client_message(data: bytes | bytearray | memoryview | str) -> ClientMessage:
    """Parse a client frame (≤ 64 KiB); raises only ``ProtocolError`` subclasses."""
    return decode_json_frame(
        CLIENT_MESSAGE_ADAPTER, data, max_bytes=MAX_CLIENT_FRAME_BYTES, channel="realtime client"
    )


def parse_server_message(data: bytes | bytearray | memoryview | str) -> ServerMessage:
    """Parse a server frame (≤ 4 MiB); raises only ``ProtocolError`` subclasses."""
    return decode_json_frame(
        SERVER_MESSAGE_ADAPTER, data, max_bytes=MAX_SERVER_FRAME_BYTES, channel="realtime server"
    )


def parse_event(data: bytes | bytearray | memoryview | str) -> RealtimeEvent:
    """Parse a bare event payload (e.g. from a NOTIFY fan-in channel)."""
    return decode_json_frame(
        EVENT_ADAPTER,
        data,
        max_bytes=MAX_SERVER_FRAME_BYTES,
        channel="realtime event",
        discriminator="event_type",
    )


def dump_message(message: ClientMessage | ServerMessage) -> str:
    """Serialise a realtime message to its JSON text frame."""
    limit = (
        MAX_CLIENT_FRAME_BYTES
        if isinstance(message, Subscribe | Unsubscribe | Ping)
        else MAX_SERVER_FRAME_BYTES
    )
    return dump_json(message, max_bytes=limit, channel="realtime")


def dump_event(event: RealtimeEvent) -> str:
    """Serialise a bare event payload."""
    return dump_json(event, max_bytes=MAX_SERVER_FRAME_BYTES, channel="realtime event")


def events_frame(events: Sequence[str]) -> str:
    """The ``events`` frame of events already serialised by :func:`dump_event`.

    Equal to ``dump_message(Events(events=...))`` without serialising any event again:
    a server fanning one event out to many clients serialises it once.
    """
    return f'{{"id":"{new_message_id()}","type":"events","events":[{",".join(events)}]}}'


def snapshot_frame(data_json: str, ref_id: str | None) -> str:
    """The ``snapshot`` frame answering subscribe ``ref_id``, around ``data`` already
    serialised by :func:`dump_snapshot_data` (shared by every subscriber that asked for
    the same view)."""
    ref = "null" if ref_id is None else f'"{ref_id}"'
    return f'{{"id":"{new_message_id()}","type":"snapshot","ref_id":{ref},"data":{data_json}}}'


_SNAPSHOT_DATA: Final[TypeAdapter[Mapping[str, object]]] = TypeAdapter(Mapping[str, Any])


def dump_snapshot_data(data: SnapshotData | Mapping[str, JsonValue]) -> str:
    """Serialise snapshot ``data`` as it appears in a ``snapshot`` frame."""
    return _SNAPSHOT_DATA.dump_json(data).decode()


_SNAPSHOT_VIEWS: Final[TypeAdapter[SnapshotData]] = TypeAdapter(SnapshotData)


def snapshot_data(data: Mapping[str, object]) -> SnapshotData:
    """A snapshot's ``data`` (the server's rows, or a parsed ``snapshot``'s) as typed views;
    raises ``pydantic.ValidationError`` when it is not one."""
    return _SNAPSHOT_VIEWS.validate_python(data)


def snapshot_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON schema of :data:`ServerMessage` with a ``snapshot``'s ``data`` and a
    ``stats`` event's ``stats`` described as what the server sends
    (:class:`~kinitro.protocol.views.SnapshotData`, :class:`~kinitro.protocol.views.Stats`)."""
    schema = SERVER_MESSAGE_ADAPTER.json_schema(mode="serialization", ref_template=ref_template)
    data = _SNAPSHOT_VIEWS.json_schema(mode="serialization", ref_template=ref_template)
    defs = schema.setdefault("$defs", {})
    defs.update(data.pop("$defs", {}))
    defs["SnapshotData"] = data
    defs["Snapshot"]["properties"]["data"] = {"$ref": ref_template.format(model="SnapshotData")}
    defs["StatsEvent"]["properties"]["stats"] = {"$ref": ref_template.format(model="Stats")}
    return schema
