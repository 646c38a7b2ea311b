"""A scripted :class:`~kinitro.evaluator.rollout.port.Rollouts` for lifecycle tests.

It plays no simulator and starts no agent: each episode "takes" ``episode_s`` on the event
loop and ends as ``outcome(spec)`` says (a clean success by default). It stands in for the
work distribution only where a test is about the job's lifecycle (deadlines, retries,
telemetry, shutdown); the Ray pool with real sandboxes is tested end to end elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

from kinitro.evaluator.results import EpisodeResult, EpisodeSpec, StepSample
from kinitro.evaluator.rollout.port import RolloutOptions, RolloutsFactory
from kinitro.evaluator.rollout.worker import WorkerConfig


def succeed(spec: EpisodeSpec) -> EpisodeResult:
    sample = StepSample(1, [0.0] * 39, [0.0] * 4, 1.0, True, {})
    return EpisodeResult(
        spec.index, spec.task, spec.task_episode, spec.seed, success=True, total_reward=1.0,
        steps=1, steps_to_success=1, terminated=True, samples=[sample],
    )  # fmt: skip


@dataclass
class ScriptedRollouts:
    config: WorkerConfig
    options: RolloutOptions
    episode_s: float = 0.0
    outcome: Callable[[EpisodeSpec], EpisodeResult] = succeed
    fail_with: BaseException | None = None
    """Raised (like a Ray failure) instead of the first result."""
    played: list[int] = field(default_factory=list)
    closed: bool = False

    async def play(self, episodes: Sequence[EpisodeSpec]) -> AsyncGenerator[EpisodeResult, None]:
        for spec in episodes:
            await asyncio.sleep(self.episode_s)
            if self.fail_with is not None:
                raise self.fail_with
            self.played.append(spec.index)
            yield self.outcome(spec)

    async def flush(self) -> list[str]:
        return []

    async def close(self) -> None:
        self.closed = True


def scripted(made: list[ScriptedRollouts] | None = None, **script: object) -> RolloutsFactory:
    """A factory of :class:`ScriptedRollouts`; each one made is appended to ``made``."""

    def make(config: WorkerConfig, options: RolloutOptions) -> ScriptedRollouts:
        rollouts = ScriptedRollouts(config, options, **script)  # type: ignore[arg-type]
        if made is not None:
            made.append(rollouts)
        return rollouts

    return make
