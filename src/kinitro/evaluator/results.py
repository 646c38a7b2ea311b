"""Internal result records of the evaluation loop (dataclasses; converted to wire at the edge).

Faults are :class:`~kinitro.protocol.common.FailureCause` members from the agent client
up to the wire message: one vocabulary, whose ``is_agent_fault`` decides what is scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kinitro.protocol.common import FailureCause


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
    failure_cause: FailureCause | None = None
    failure_detail: str | None = None
    actions_ref: str | None = None
    action_fingerprint: str | None = None
    """:mod:`kinitro.protocol.fingerprint` of the actions taken (behavioural copies)."""
    media_refs: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    agent_s: float = 0.0
    """Agent time of the episode (waiting for ``reset``/``act``; a batch round trip is
    shared by its episodes): what the job's compute budget counts."""
    samples: list[StepSample] = field(default_factory=list)
    attempts: int = 1
    sandbox_starts: int = 0
    """Agent sandboxes the rollout workers started for this episode's attempts (metrics)."""
    retried: list[FailureCause] = field(default_factory=list)
    """Causes of the earlier attempts, retried as infrastructure faults (metrics)."""

    def __post_init__(self) -> None:
        if self.failure_cause is not None:  # a plain value becomes the member (or raises)
            self.failure_cause = FailureCause(self.failure_cause)

    @property
    def scored(self) -> bool:
        """Counts for the miner: a clean episode or an agent fault."""
        return self.failure_cause is None or self.failure_cause.is_agent_fault

    @property
    def infra_fault(self) -> bool:
        """Ours (retried, never scored)."""
        return not self.scored

    @classmethod
    def failed(cls, spec: EpisodeSpec, cause: FailureCause, detail: str) -> EpisodeResult:
        """The result of an episode that ended (or never started) with ``cause``."""
        return cls(
            index=spec.index,
            task=spec.task,
            task_episode=spec.task_episode,
            seed=spec.seed,
            failure_cause=cause,
            failure_detail=detail,
        )
