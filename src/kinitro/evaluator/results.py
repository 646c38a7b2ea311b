"""Internal result records of the evaluation loop (dataclasses; converted to wire at the edge)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# FailureCause values (mirrors kinitro.protocol.common.FailureCause).
AGENT_TIMEOUT = "agent_timeout"
AGENT_CRASH = "agent_crash"
INVALID_ACTION = "invalid_action"
PROTOCOL_VIOLATION = "protocol_violation"
SANDBOX_START = "sandbox_start"
SIMULATOR_ERROR = "simulator_error"
WORKER_LOST = "worker_lost"
INTERNAL = "internal"

AGENT_FAULTS = frozenset({AGENT_TIMEOUT, AGENT_CRASH, INVALID_ACTION, PROTOCOL_VIOLATION})
INFRA_FAULTS = frozenset({SANDBOX_START, SIMULATOR_ERROR, WORKER_LOST, INTERNAL})


def is_agent_fault(cause: str | None) -> bool:
    return cause in AGENT_FAULTS


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    """One episode to run: where it sits in the job and the seed of its simulator."""

    index: int
    task: str
    task_episode: int
    seed: int


@dataclass(slots=True)
class StepSample:
    step: int
    observation: list[float]
    action: list[float]
    reward: float
    success: bool
    info: dict[str, Any]


@dataclass(slots=True)
class EpisodeResult:
    """What one episode produced; ``failure_cause`` is None for a clean episode."""

    index: int
    task: str
    task_episode: int
    seed: int
    success: bool = False
    total_reward: float = 0.0
    steps: int = 0
    steps_to_success: int | None = None
    terminated: bool = False
    truncated: bool = False
    failure_cause: str | None = None
    failure_detail: str | None = None
    actions_ref: str | None = None
    media_refs: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    samples: list[StepSample] = field(default_factory=list)
    attempts: int = 1

    @property
    def infra_fault(self) -> bool:
        return self.failure_cause is not None and not is_agent_fault(self.failure_cause)

    @classmethod
    def failed(cls, spec: EpisodeSpec, cause: str, detail: str) -> EpisodeResult:
        """The result of an episode that ended (or never started) with ``cause``."""
        return cls(
            index=spec.index,
            task=spec.task,
            task_episode=spec.task_episode,
            seed=spec.seed,
            failure_cause=cause,
            failure_detail=detail,
        )
