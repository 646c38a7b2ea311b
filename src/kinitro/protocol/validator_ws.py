"""Backend ↔ validator WebSocket protocol (``/ws/validator``), both directions.

Every frame is one JSON text message with a ``type`` discriminator and an ``id`` (uuid4
hex, generated once and kept across resends). Parse with :func:`parse_validator_message`
(raises only :class:`~kinitro.protocol.errors.ProtocolError` subclasses) and dispatch with
``match``; serialise with :func:`dump_message`.

Session::

    backend                                   validator
      auth_challenge {nonce, expires_at, protocol_version}  →
                                          ←   auth_response {hotkey, nonce, signature,
                                                             protocol_version, runtime}
      auth_ok {uid, heartbeat_interval_s} →   (or error{auth_failed|unsupported_version|…}
                                               and close)
      eval_job / set_weights / cancel_job →
                                          ←   ack {ack_id}
                                          ←   job_status / episode / episode_steps / eval_result
      ack {ack_id}                        →
      heartbeat                          ←→   heartbeat

Delivery: the state-changing messages (:data:`ACKED_TYPES`) are kept in the sender's
durable outbox until the peer answers ``ack`` with ``ack_id`` = the message ``id``. The
receiver upserts by the message's natural key (``natural_key()``; validator-originated
keys include the authenticated validator hotkey, which is not part of the message) and
acks duplicates again, so resends are harmless. ``ack(ok=False)`` carries an
:class:`ErrorCode`; the sender must not resend an ``invalid_message`` unchanged.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import Field, JsonValue, StringConstraints, TypeAdapter, model_validator

from kinitro.protocol import fingerprint
from kinitro.protocol._codec import decode_json_frame, dump_json
from kinitro.protocol.common import (
    PROTOCOL_VERSION,
    ArtifactRef,
    BenchmarkSpec,
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
    TaskName,
    Uid,
    UtcDatetime,
    WireModel,
)
from kinitro.protocol.runtime import RuntimeVersions

MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
"""Largest accepted frame; WebSocket servers/clients must allow at least this size."""
MAX_STEP_SAMPLES: Final = 1000
"""Most step samples in one ``episode_steps`` batch."""
MAX_VECTOR_LEN: Final = 65_536
"""Most floats in one observation / action vector of a step sample."""

# close codes of /ws/validator (docs/protocol.md)
CLOSE_AUTH_FAILED: Final = 4401  # signature, nonce, no auth_response
CLOSE_NOT_PERMITTED: Final = 4403  # not registered, no permit and too little stake
CLOSE_TIMEOUT: Final = 4408  # heartbeat timeout
CLOSE_REPLACED: Final = 4409  # a newer session of the same hotkey
CLOSE_INCOMPATIBLE: Final = 4426  # protocol or evaluator runtime not accepted
CLOSE_ABUSIVE: Final = 1008  # too many invalid frames
CLOSE_GOING_AWAY: Final = 1001
CLOSE_INTERNAL: Final = 1011
CLOSE_TRY_AGAIN_LATER: Final = 1013  # too many sign-ins (this address, or the replica)

Text = Annotated[str, StringConstraints(max_length=4096)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
HexNonce = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32,128}$")]
HexSignature = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
MediaKey = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Vector = Annotated[list[float], Field(max_length=MAX_VECTOR_LEN)]
ActionFingerprint = Annotated[
    str, StringConstraints(max_length=fingerprint.MAX_CHARS, pattern=r"^[a-z0-9]+:[0-9A-Za-z:_-]*$")
]


def auth_payload(nonce: str, hotkey: str) -> bytes:
    """The exact bytes a validator signs (sr25519) to answer a challenge."""
    return f"kinitro-auth:{nonce}:{hotkey}".encode()


# ----------------------------------------------------------------- session


class AuthChallenge(IdentifiedMessage):
    """backend → validator, first frame after connect. Answer before ``expires_at``."""

    type: Literal["auth_challenge"] = "auth_challenge"
    nonce: HexNonce
    backend_version: ShortText
    protocol_version: Annotated[int, Field(ge=1)] = PROTOCOL_VERSION
    expires_at: UtcDatetime


class AuthResponse(IdentifiedMessage):
    """validator → backend. ``signature`` = hex sr25519 signature by ``hotkey`` over
    :func:`auth_payload` (``kinitro-auth:{nonce}:{hotkey}``). ``lite`` validators set
    weights but run no evaluator. ``runtime`` — the simulator stack and benchmark series
    its evaluator runs — is required unless ``lite``; the backend refuses runtimes it
    does not accept (``unsupported_version``)."""

    type: Literal["auth_response"] = "auth_response"
    hotkey: Hotkey
    nonce: HexNonce
    signature: HexSignature
    validator_version: ShortText
    protocol_version: Annotated[int, Field(ge=1)] = PROTOCOL_VERSION
    lite: bool = False
    runtime: RuntimeVersions | None = None

    def signed_payload(self) -> bytes:
        """The bytes ``signature`` must verify against."""
        return auth_payload(self.nonce, self.hotkey)


class AuthOk(IdentifiedMessage):
    """backend → validator: authenticated; send ``heartbeat`` every interval."""

    type: Literal["auth_ok"] = "auth_ok"
    hotkey: Hotkey
    uid: Uid
    heartbeat_interval_s: Annotated[float, Field(gt=0, le=3600)]
    session_id: Identifier


class Ack(IdentifiedMessage):
    """Either direction: acknowledges the message whose ``id`` is ``ack_id``.

    ``ok=True``: stored (or already stored — duplicates are acked again).
    ``ok=False``: rejected with ``error_code`` (required) and ``detail``.
    """

    type: Literal["ack"] = "ack"
    ack_id: MessageId
    ok: bool = True
    error_code: ErrorCode | None = None
    detail: Text | None = None

    @model_validator(mode="after")
    def _code_iff_failed(self) -> Self:
        if self.ok and self.error_code is not None:
            raise ValueError("error_code must be null when ok is true")
        if not self.ok and self.error_code is None:
            raise ValueError("error_code is required when ok is false")
        return self

    @classmethod
    def of(cls, message: IdentifiedMessage) -> Ack:
        """A positive ack of ``message``."""
        return cls(ack_id=message.id)

    @classmethod
    def reject(cls, ack_id: str, code: ErrorCode, detail: str | None = None) -> Ack:
        """A negative ack of message ``ack_id``."""
        return cls(ack_id=ack_id, ok=False, error_code=code, detail=detail)


class Heartbeat(IdentifiedMessage):
    """Either direction (normally validator → backend) every ``heartbeat_interval_s``."""

    type: Literal["heartbeat"] = "heartbeat"
    sent_at: UtcDatetime
    queue_depth: NonNegInt | None = None
    jobs_in_flight: NonNegInt | None = None


class ErrorMessage(IdentifiedMessage):
    """Either direction: a typed error, about message ``ref_id`` when there is one."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: Text
    ref_id: MessageId | None = None


# ------------------------------------------------------------ backend → validator


class EvalJob(IdentifiedMessage):
    """backend → validator: evaluate ``artifact`` on ``benchmark``.

    Natural key: ``job_id`` (the validator stores it in pgqueuer before acking; a
    redelivered job is acked again, not enqueued twice). ``seed`` is the u64 base seed of
    the round; per-episode seeds are derived by the evaluator and NEVER sent to the agent.
    ``attempt`` starts at 1 and grows when the backend reassigns the job.
    """

    type: Literal["eval_job"] = "eval_job"
    job_id: Identifier
    submission_id: Identifier
    competition_id: CompetitionId
    miner_hotkey: Hotkey
    miner_uid: Uid
    artifact: ArtifactRef
    benchmark: BenchmarkSpec
    round_id: Identifier
    seed: Annotated[int, Field(ge=0, le=2**64 - 1)]
    deadline_s: Annotated[float, Field(gt=0, le=7 * 24 * 3600)]
    attempt: Annotated[int, Field(ge=1)] = 1
    created_at: UtcDatetime

    def natural_key(self) -> str:
        """``job_id``."""
        return self.job_id


class SetWeights(IdentifiedMessage):
    """backend → validator: set these weights on chain.

    Natural key: ``weights_id``. ``weights`` maps uid → non-negative weight (the chain
    normalises). ``competition_summary`` is free-form JSON for logs and dashboards.
    """

    type: Literal["set_weights"] = "set_weights"
    weights_id: Identifier
    netuid: Uid
    weights: dict[Uid, NonNegFloat]
    computed_at: UtcDatetime
    competition_summary: dict[str, JsonValue] | None = None

    def natural_key(self) -> str:
        """``weights_id``."""
        return self.weights_id


class CancelJob(IdentifiedMessage):
    """backend → validator: stop ``job_id`` (protocol 4) — its submission was superseded by
    a newer one of the same miner, or an operator cancelled it.

    Natural key: ``job_id``. The validator marks the job ``cancelled`` in its database
    before acking; its evaluator skips the job if it has not started it, or stops the run
    within seconds (freeing its workers) and reports nothing more for it. A job the
    validator does not know or has finished is acked as is.
    """

    type: Literal["cancel_job"] = "cancel_job"
    job_id: Identifier
    reason: ShortText

    def natural_key(self) -> str:
        """``job_id``."""
        return self.job_id


# ------------------------------------------------------------ validator → backend


class JobStatus(IdentifiedMessage):
    """validator → backend: a job changed state / made progress.

    Natural key: ``(job_id, validator_hotkey, seq)``; ``seq`` is monotonic per job and
    validator, so the receiver can ignore stale updates (keep the highest ``seq``).
    """

    type: Literal["job_status"] = "job_status"
    job_id: Identifier
    state: JobState
    seq: NonNegInt
    detail: Text | None = None
    episodes_done: NonNegInt = 0
    episodes_total: NonNegInt = 0
    at: UtcDatetime

    @model_validator(mode="after")
    def _progress(self) -> Self:
        if self.episodes_done > self.episodes_total:
            raise ValueError("episodes_done must not exceed episodes_total")
        return self

    def natural_key(self, validator_hotkey: str) -> tuple[str, str, int]:
        """``(job_id, validator_hotkey, seq)``."""
        return (self.job_id, validator_hotkey, self.seq)


class EvalResult(IdentifiedMessage):
    """validator → backend: the final result of a job (``state`` is terminal).

    Natural key: ``(job_id, validator_hotkey)``. ``metrics`` is required when
    ``state`` is ``completed``. For a failed job, ``failure_cause`` says whether the
    agent (scored) or the infrastructure (retried, never scored) is to blame. ``runtime``
    is the evaluator's simulator stack (results of different runtimes are never combined
    in one score); None only for a result queued by an evaluator older than protocol 2.
    """

    type: Literal["eval_result"] = "eval_result"
    job_id: Identifier
    state: JobState
    metrics: EvalMetrics | None = None
    error: Text | None = None
    failure_cause: FailureCause | None = None
    started_at: UtcDatetime
    finished_at: UtcDatetime
    evaluator_version: ShortText
    runtime: RuntimeVersions | None = None

    @model_validator(mode="after")
    def _terminal(self) -> Self:
        if not self.state.is_terminal:
            raise ValueError(f"state must be terminal, got {self.state.value!r}")
        if self.state is JobState.COMPLETED and self.metrics is None:
            raise ValueError("metrics are required when state is 'completed'")
        if self.finished_at < self.started_at:
            raise ValueError("finished_at must not be before started_at")
        return self

    def natural_key(self, validator_hotkey: str) -> tuple[str, str]:
        """``(job_id, validator_hotkey)``."""
        return (self.job_id, validator_hotkey)


class Episode(IdentifiedMessage):
    """validator → backend: summary of one finished episode.

    Natural key: ``(job_id, validator_hotkey, episode_index)``. ``episode_index`` is
    global within the job; ``task_episode`` is the index within ``task``.
    ``actions_ref`` is the media-store key of the compact action log; ``media_refs``
    are media-store keys of videos/images. ``seed`` is the simulator seed the episode was
    reset with (``kinitro.protocol.rounds.episode_seed`` of the job's seed, ``task`` and
    ``task_episode``): the backend refuses an episode whose seed is not the one derived
    for this validator, and never publishes it before the round is revealed.
    ``action_fingerprint`` (optional, versioned text of :mod:`kinitro.protocol.fingerprint`)
    sketches the actions the agent took; the backend compares those of paired episodes to
    find behavioural copies and never publishes them.
    """

    type: Literal["episode"] = "episode"
    job_id: Identifier
    episode_index: NonNegInt
    task: TaskName
    task_episode: NonNegInt
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)]
    success: bool
    total_reward: float
    steps: NonNegInt
    steps_to_success: NonNegInt | None = None
    terminated: bool
    truncated: bool
    failure_cause: FailureCause | None = None
    failure_detail: Text | None = None
    actions_ref: MediaKey | None = None
    media_refs: Annotated[list[MediaKey], Field(max_length=64)] = Field(default_factory=list)
    duration_s: NonNegFloat
    action_fingerprint: ActionFingerprint | None = None

    def natural_key(self, validator_hotkey: str) -> tuple[str, str, int]:
        """``(job_id, validator_hotkey, episode_index)``."""
        return (self.job_id, validator_hotkey, self.episode_index)


class StepSample(WireModel):
    """One logged environment step (every ``step_log_interval`` steps)."""

    step: NonNegInt
    observation: Vector
    action: Vector
    reward: float
    success: bool
    info: dict[str, JsonValue] = Field(default_factory=dict)


class EpisodeSteps(IdentifiedMessage):
    """validator → backend: a batch of step samples of one episode.

    Natural key: ``(job_id, validator_hotkey, episode_index, batch_index)``.
    """

    type: Literal["episode_steps"] = "episode_steps"
    job_id: Identifier
    episode_index: NonNegInt
    batch_index: NonNegInt
    samples: Annotated[list[StepSample], Field(max_length=MAX_STEP_SAMPLES)]

    def natural_key(self, validator_hotkey: str) -> tuple[str, str, int, int]:
        """``(job_id, validator_hotkey, episode_index, batch_index)``."""
        return (self.job_id, validator_hotkey, self.episode_index, self.batch_index)


# ------------------------------------------------------------------ union


ValidatorMessage = Annotated[
    AuthChallenge
    | AuthResponse
    | AuthOk
    | Ack
    | Heartbeat
    | EvalJob
    | JobStatus
    | EvalResult
    | Episode
    | EpisodeSteps
    | SetWeights
    | CancelJob
    | ErrorMessage,
    Field(discriminator="type"),
]
"""Every message on ``/ws/validator``."""

VALIDATOR_MESSAGE_ADAPTER: Final[TypeAdapter[ValidatorMessage]] = TypeAdapter(ValidatorMessage)

BACKEND_TO_VALIDATOR: Final = frozenset(
    {
        "auth_challenge",
        "auth_ok",
        "ack",
        "heartbeat",
        "eval_job",
        "set_weights",
        "cancel_job",
        "error",
    }
)
"""Message types the backend may send (a validator answers others with
``unexpected_message``)."""
VALIDATOR_TO_BACKEND: Final = frozenset(
    {
        "auth_response",
        "ack",
        "heartbeat",
        "job_status",
        "eval_result",
        "episode",
        "episode_steps",
        "error",
    }
)
"""Message types a validator may send."""
ACKED_TYPES: Final = frozenset(
    {
        "eval_job",
        "set_weights",
        "cancel_job",
        "job_status",
        "eval_result",
        "episode",
        "episode_steps",
    }
)
"""State-changing types: kept in the sender's outbox until acked, upserted by natural key."""


def parse_validator_message(data: bytes | bytearray | memoryview | str) -> ValidatorMessage:
    """Parse one frame; raises only :class:`~kinitro.protocol.errors.ProtocolError`.

    Oversize → ``FrameTooLargeError``; not UTF-8 / JSON / an object →
    ``MalformedFrameError``; missing or unknown ``type`` → ``UnknownMessageTypeError``;
    bad fields → ``InvalidMessageError`` (``.issues``; ``.message_id`` when readable, to
    use as ``ack_id`` / ``ref_id``).
    """
    return decode_json_frame(
        VALIDATOR_MESSAGE_ADAPTER, data, max_bytes=MAX_FRAME_BYTES, channel="validator"
    )


def requires_ack(message: ValidatorMessage) -> bool:
    """True for state-changing messages (see :data:`ACKED_TYPES`)."""
    return message.type in ACKED_TYPES


def dump_message(message: ValidatorMessage) -> str:
    """Serialise a message to its JSON text frame.

    Raises ``FrameTooLargeError`` when the frame would exceed :data:`MAX_FRAME_BYTES`
    (split ``episode_steps`` into smaller batches).
    """
    return dump_json(message, max_bytes=MAX_FRAME_BYTES, channel="validator")


dump = dump_message
