"""Enums, constrained types and models shared by every Kinitro wire channel.

Everything here is plain data: no I/O. Wire models are frozen pydantic v2 models that
forbid unknown fields and non-finite floats; timestamps are timezone-aware and
normalised to UTC.

* :class:`JobState` — lifecycle of an evaluation job (``is_terminal``).
* :class:`FailureCause` — why an episode or job failed (``is_agent_fault``).
* :class:`ErrorCode` — the typed codes carried by protocol errors, ``ack`` and ``error``
  messages.
* :class:`ArtifactRef` — a pinned agent bundle in an artifact registry.
* :class:`BenchmarkSpec` — what to evaluate and how (its competition knobs,
  ``Conditions``, live in :mod:`kinitro.protocol.conditions`).
* :class:`TaskMetrics` / :class:`EvalMetrics` — aggregated evaluation results, with
  :func:`wilson_interval` to compute their 95 % confidence bounds.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kinitro.protocol.compute import DEFAULT_STEP_ALLOWANCE_MS, ComputeReport
from kinitro.protocol.conditions import (
    METAWORLD_CAMERAS,
    Conditions,
    ObservationMode,
    is_meta_test_set,
)
from kinitro.protocol.wire import WireModel as WireModel  # re-exported: the models import it here

PROTOCOL_VERSION = 4
"""Version of the WebSocket protocols; bumped on any incompatible wire change.
2: ``auth_response.runtime`` (required unless lite) and ``eval_result.runtime``.
3: ``episode.seed`` (required): the simulator seed the episode ran, cross-checked by the
backend against the seed derived for that validator.
4: ``cancel_job`` (backend → validator): stop a superseded or cancelled job;
``eval_result.metrics.compute`` and the ``host_timeout`` cause."""


class IdentifiedMessage(WireModel):
    """Base of every top-level message: carries ``id`` (uuid4 hex).

    Built in Python, ``id`` defaults to a fresh uuid4; keep it when resending. Parsed
    from a frame, ``id`` is required (a missing id is an invalid message, never invented).
    """

    id: MessageId = Field(default="", validate_default=True)

    @field_validator("id", mode="before")
    @classmethod
    def _id_required_on_the_wire(cls, value: Any, info: ValidationInfo) -> Any:
        if value == "":
            if info.mode == "json":
                raise PydanticCustomError("missing", "Field required")
            return new_message_id()
        return value


# --------------------------------------------------------------------------- enums


class JobState(StrEnum):
    """Lifecycle of an evaluation job.

    ``queued → starting → running → completed | failed | timed_out``; any non-terminal
    state may go to ``cancelled``.
    """

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for states a job never leaves (completed, failed, timed_out, cancelled)."""
        return self in _TERMINAL_JOB_STATES


_TERMINAL_JOB_STATES = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELLED}
)


class FailureCause(StrEnum):
    """Why an episode (or a whole job) failed, and so who pays for it.

    Agent faults (the miner's) score against the miner and earn no retry; infrastructure
    faults (the validator's or the platform's) are retried and never scored. The blame
    table in ``docs/evaluator.md`` says which event produces which cause.
    """

    # agent faults
    AGENT_TIMEOUT = "agent_timeout"
    """No answer within the call's deadline, or the job's agent compute budget ran out."""
    AGENT_CRASH = "agent_crash"
    """The agent's code raised, its process died, or it failed to load."""
    INVALID_ACTION = "invalid_action"
    """An action of the wrong dtype or shape, or not finite."""
    PROTOCOL_VIOLATION = "protocol_violation"
    """An answer that is not a valid answer to the request (malformed frame, wrong id,
    wrong number of actions, an error naming a slot the request did not have …)."""
    INVALID_BUNDLE = "invalid_bundle"
    """The job's bundle cannot be used: it does not unpack, its sha256 or manifest is
    wrong, or it is gone from the registry (a whole-job fault)."""
    # infrastructure faults
    SANDBOX_START = "sandbox_start"
    SIMULATOR_ERROR = "simulator_error"
    WORKER_LOST = "worker_lost"
    INTERNAL = "internal"
    HOST_TIMEOUT = "host_timeout"
    """The job's deadline passed while its agent was within its compute budget: the
    evaluating host was too slow (a whole-job fault)."""

    @property
    def is_agent_fault(self) -> bool:
        """True when the miner's agent is to blame (the episode counts as a failure)."""
        return self in _AGENT_FAULTS

    @property
    def is_retryable(self) -> bool:
        """True for infrastructure faults: retry, never score."""
        return not self.is_agent_fault


_AGENT_FAULTS = frozenset(
    {
        FailureCause.AGENT_TIMEOUT,
        FailureCause.AGENT_CRASH,
        FailureCause.INVALID_ACTION,
        FailureCause.PROTOCOL_VIOLATION,
        FailureCause.INVALID_BUNDLE,
    }
)


class ErrorCode(StrEnum):
    """Typed error codes.

    Carried by every :class:`~kinitro.protocol.errors.ProtocolError`, by ``ack``
    (``ok=False``) and by ``error`` messages on both WebSockets. Mapping to HTTP status
    or WebSocket close codes happens only at the edge of a process.
    """

    # decoding (raised by the protocol codecs)
    MALFORMED_FRAME = "malformed_frame"
    """Not decodable at all: invalid UTF-8, invalid JSON/msgpack, not an object."""
    FRAME_TOO_LARGE = "frame_too_large"
    """The frame exceeds the channel's size limit."""
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"
    """The ``type`` (or ``event_type``) discriminator is missing or unknown."""
    INVALID_MESSAGE = "invalid_message"
    """Known type but a field is missing, extra, of the wrong type or out of range."""
    UNSUPPORTED_VERSION = "unsupported_version"
    """Protocol / commitment / spec version not supported by this receiver."""
    INVALID_COMMITMENT = "invalid_commitment"
    """A chain commitment that does not parse (a field is bad)."""
    COMMITMENT_TOO_LONG = "commitment_too_long"
    """A commitment that would exceed 128 UTF-8 bytes."""
    INVALID_ARRAY = "invalid_array"
    """A binary array with the wrong dtype, shape or byte length (agent RPC)."""
    NON_FINITE_VALUE = "non_finite_value"
    """NaN or infinity where finite numbers are required (e.g. actions)."""
    # session / application (sent by receivers)
    UNEXPECTED_MESSAGE = "unexpected_message"
    """Valid message, but not allowed in this direction or session state."""
    AUTH_REQUIRED = "auth_required"
    AUTH_FAILED = "auth_failed"
    AUTH_EXPIRED = "auth_expired"
    NOT_PERMITTED = "not_permitted"
    """Authenticated but not allowed (e.g. hotkey has no validator permit / stake)."""
    UNKNOWN_JOB = "unknown_job"
    CONFLICT = "conflict"
    """Same natural key already stored with different content."""
    RATE_LIMITED = "rate_limited"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    UNAVAILABLE = "unavailable"
    """Temporarily unable to process (shutting down, database down): retry later."""
    INTERNAL_ERROR = "internal_error"
    CROSS_CHECK_FAILED = "cross_check_failed"
    """A validator's episode or result does not match its job (``detail`` starts with the
    :class:`StrikeReason`); refused for good and counted against the validator."""


class StrikeReason(StrEnum):
    """Why a validator was struck: its report did not match its job, or an audit of it
    failed. One vocabulary from the backend database to the dashboard."""

    NOT_ASSIGNED = "not_assigned"
    """Reported on a job that was never assigned to it."""
    WRONG_EPISODE = "wrong_episode"
    """An episode index, task or task episode outside the job's plan."""
    SEED_MISMATCH = "seed_mismatch"
    """An episode's seed is not the one derived for this validator."""
    STEP_BUDGET_EXCEEDED = "step_budget_exceeded"
    """More steps than the benchmark's ``max_steps``, or an inconsistent step count."""
    MISSING_EPISODES = "missing_episodes"
    """The result came without a summary of every episode the job specifies."""
    METRICS_MISMATCH = "metrics_mismatch"
    """The result's metrics are not what its episode summaries add up to."""
    AUDIT_MISMATCH = "audit_mismatch"
    """Re-simulating a logged episode after the reveal gave another outcome (or its
    action log is missing, unreadable or not that episode's)."""
    AGENT_RERUN_MISMATCH = "agent_rerun_mismatch"
    """A deterministic bundle re-run by two other validators on the episode's seed acted
    alike, and not as the validator's action log says: the logged actions are not the
    agent's."""


# ------------------------------------------------------------- constrained types


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("datetime is out of range once converted to UTC") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""Timezone-aware datetime, normalised to UTC (naive datetimes are rejected)."""

COMPETITION_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
REPO_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
REVISION_PATTERN = r"^[A-Za-z0-9._-]+$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
COMPETITION_ID_MAX = 32
REPO_MAX = 96
REVISION_MAX = 64

MessageId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
"""A message id: uuid4 hex (32 lowercase hex digits)."""

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"),
]
"""An opaque id (job, submission, round, session, weights …): 1–128 chars of
``[A-Za-z0-9._:@-]``, starting with a letter or digit."""

CompetitionId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=COMPETITION_ID_MAX, pattern=COMPETITION_ID_PATTERN),
]
"""A competition id: 1–32 chars of ``[a-z0-9_-]`` starting with a letter or digit."""

Hotkey = Annotated[str, StringConstraints(pattern=r"^[1-9A-HJ-NP-Za-km-z]{46,48}$")]
"""An SS58 address (base58 alphabet, 46–48 chars; the checksum is not verified here)."""

Uid = Annotated[int, Field(ge=0, le=65535)]
"""A subnet uid (u16)."""

HexSha256 = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]
"""A SHA-256 digest as 64 lowercase hex digits."""

RepoName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=REPO_MAX, pattern=REPO_PATTERN),
]
"""A registry repository: ``name`` or ``namespace/name`` (Hugging Face requires the
namespace), 1–96 chars of ``[A-Za-z0-9._-]`` plus one optional ``/``."""

Revision = Annotated[
    str, StringConstraints(min_length=1, max_length=REVISION_MAX, pattern=REVISION_PATTERN)
]
"""A registry revision: 1–64 chars of ``[A-Za-z0-9._-]``. Hugging Face revisions must be
a full 40-hex commit sha (pinned)."""

TaskName = Annotated[
    str, StringConstraints(min_length=1, max_length=96, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
"""A benchmark task or camera name (``reach-v3``, ``corner2``): 1–96 chars of
``[A-Za-z0-9._-]`` starting with a letter or digit (safe in media keys and paths)."""

RegistryKind = Literal["local", "hf"]

NonNegInt = Annotated[int, Field(ge=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Pixels = Annotated[int, Field(ge=1, le=4096)]

_HF_REVISION = "0123456789abcdef"


def new_message_id() -> str:
    """A fresh message id (uuid4 hex). Keep it when resending the same message."""
    return uuid.uuid4().hex


def check_pinned_revision(registry: str, revision: str) -> str | None:
    """Return a problem description if ``revision`` is not valid for ``registry``."""
    if registry == "hf" and (len(revision) != 40 or any(c not in _HF_REVISION for c in revision)):
        return "Hugging Face revisions must be a full 40-hex lowercase commit sha"
    return None


# ------------------------------------------------------------------------ models


class ArtifactRef(WireModel):
    """A pinned agent bundle in an artifact registry.

    Identity of the bundle content is ``sha256`` (of the bundle archive);
    ``(registry, repo, revision)`` says where to fetch it.
    """

    registry: RegistryKind
    repo: RepoName
    revision: Revision
    sha256: HexSha256
    size_bytes: NonNegInt

    @model_validator(mode="after")
    def _pinned(self) -> Self:
        problem = check_pinned_revision(self.registry, self.revision)
        if problem is not None:
            raise ValueError(f"revision: {problem}")
        return self


def default_reveal_task_name(benchmark_id: str) -> bool:
    """False for meta-learning test sets (``metaworld/ML10-test-v3`` …), true otherwise."""
    return not is_meta_test_set(benchmark_id)


class BenchmarkSpec(WireModel):
    """What to evaluate: a Meta-World benchmark with resolved task names.

    ``benchmark_id`` follows Gymnasium's versioning: ``metaworld/MT10-v3``,
    ``metaworld/MT1-reach-v3`` …; the ``-vN`` suffix is bumped whenever a change could
    change scores. ``step_log_interval`` is the number of steps between logged step
    samples (0 disables step logging).

    ``reveal_task_name``: whether the agent is told the task's name at reset (otherwise
    it gets the empty string and must infer the task from what it observes). Omitted or
    null, it takes the benchmark's default, :func:`default_reveal_task_name`: true for
    multi-task sets (MT1/MT10/…), false for meta-learning test sets (ML10/ML45 test
    tasks), whose point is that the agent does not know which task it faces. Parsed
    specs always carry an explicit value.
    """

    provider: Literal["metaworld"] = "metaworld"
    benchmark_id: Annotated[
        str,
        StringConstraints(max_length=96, pattern=r"^metaworld/[A-Za-z0-9][A-Za-z0-9._-]*-v[0-9]+$"),
    ]
    tasks: Annotated[list[TaskName], Field(min_length=1, max_length=256)]
    episodes_per_task: Annotated[int, Field(ge=1, le=10_000)]
    max_steps: Annotated[int, Field(ge=1, le=100_000)] = 500
    observation_mode: ObservationMode = "state"
    """``state`` (float32 vector), ``rgb`` (camera image only) or ``state+rgb``."""
    camera: TaskName | None = None
    """One of :data:`METAWORLD_CAMERAS` (default ``corner``), when the mode includes rgb."""
    resolution: tuple[Pixels, Pixels] | None = None
    """``(width, height)`` of rendered images, when ``observation_mode`` includes rgb."""
    step_log_interval: Annotated[int, Field(ge=0, le=100_000)] = 10
    agent_step_allowance_ms: Annotated[float, Field(gt=0.0, le=10_000.0)] = (
        DEFAULT_STEP_ALLOWANCE_MS
    )
    """Agent time per planned step on the reference host: the job's compute budget
    (:mod:`kinitro.protocol.compute`)."""
    reveal_task_name: bool = Field(default=None, validate_default=True)
    conditions: Conditions = Field(default_factory=Conditions, validate_default=True)
    """Competition knobs (noise, delay, dynamics, hidden goal): :class:`Conditions`."""

    @field_validator("reveal_task_name", mode="before")
    @classmethod
    def _default_reveal_task_name(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:  # omitted or null: the benchmark's default, made explicit
            benchmark_id = info.data.get("benchmark_id")
            return default_reveal_task_name(benchmark_id) if isinstance(benchmark_id, str) else True
        return value

    @field_validator("conditions")
    @classmethod
    def _explicit_goal(cls, value: Conditions, info: ValidationInfo) -> Conditions:
        # the benchmark's default becomes explicit, so every job records it
        benchmark_id = info.data.get("benchmark_id")
        if value.reveal_goal is None and isinstance(benchmark_id, str):
            return value.model_copy(update={"reveal_goal": not is_meta_test_set(benchmark_id)})
        return value

    @model_validator(mode="after")
    def _noise_needs_a_state(self) -> Self:
        if self.observation_mode == "rgb" and self.conditions.observation_noise:
            raise ValueError(
                "conditions.observation_noise perturbs the state vector, which an 'rgb' "
                "competition does not send (images are not perturbed)"
            )
        return self

    @field_validator("camera")
    @classmethod
    def _known_camera(cls, value: str | None) -> str | None:
        if value is not None and value not in METAWORLD_CAMERAS:
            raise ValueError(f"unknown camera {value!r}; one of {', '.join(METAWORLD_CAMERAS)}")
        return value

    @property
    def total_episodes(self) -> int:
        """Episodes in one evaluation of this benchmark."""
        return len(self.tasks) * self.episodes_per_task


class TaskMetrics(WireModel):
    """Aggregated results of a set of episodes (one task, or all tasks for ``overall``).

    ``scored_episodes`` excludes infrastructure failures; ``success_rate`` and its
    Wilson 95 % interval ``[ci_low, ci_high]`` are computed over scored episodes.
    ``failures`` counts episodes per failure cause.
    """

    episodes: NonNegInt
    successes: NonNegInt
    success_rate: Probability
    ci_low: Probability
    ci_high: Probability
    mean_return: float
    mean_steps_to_success: NonNegFloat | None = None
    failures: dict[FailureCause, NonNegInt] = Field(default_factory=dict)
    scored_episodes: NonNegInt

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.scored_episodes > self.episodes:
            raise ValueError("scored_episodes must not exceed episodes")
        if self.successes > self.scored_episodes:
            raise ValueError("successes must not exceed scored_episodes")
        if self.ci_low > self.ci_high:
            raise ValueError("ci_low must not exceed ci_high")
        return self


class EvalMetrics(WireModel):
    """Results of one evaluation job: per task (keyed by task name) and overall."""

    per_task: dict[TaskName, TaskMetrics]
    overall: TaskMetrics
    compute: ComputeReport | None = None
    """The agent's compute budget and use (evaluators of protocol 4 and later)."""


def wilson_interval(
    successes: int, trials: int, z: float = 1.959963984540054
) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95 % by default).

    Returns ``(0.0, 1.0)`` when there are no trials.
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"invalid counts: {successes} successes of {trials} trials")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, min(p, centre - half))
    high = 1.0 if successes == trials else min(1.0, max(p, centre + half))
    return low, high
