"""Environment-side types shared by every benchmark provider.

A *benchmark* (``metaworld/MT10-v3``) is a versioned, named list of *tasks*
(``reach-v3`` …). A provider turns a task name and an :class:`EnvConfig` into a
:class:`TaskEnv`, a thin Gymnasium-style wrapper that the rollout loop drives:
``reset(seed)`` then ``step(action)`` until ``terminated`` or ``truncated``.

Episode seeds are derived by :func:`derive_episode_seed` (``kinitro.protocol.rounds``) from
the job's base seed; they seed the simulator only and are never part of what the agent
sees (:meth:`TaskEnv.task_info`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from kinitro.protocol.agent_rpc import ArraySpec, ObservationSpec
from kinitro.protocol.conditions import Conditions, ObservationMode
from kinitro.protocol.rounds import episode_seed

Observation = npt.NDArray[Any] | dict[str, npt.NDArray[Any]]
Expert = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]
"""A scripted policy: state vector in, action out (trusted reference code)."""

# One derivation for everyone who recomputes seeds (evaluator, backend, round verify).
derive_episode_seed = episode_seed


@dataclass(frozen=True, slots=True)
class EnvConfig:
    """How a task environment is built for one job (``BenchmarkSpec`` fields)."""

    max_steps: int = 500
    observation_mode: ObservationMode = "state"
    camera: str | None = None
    resolution: tuple[int, int] | None = None  # (width, height)
    conditions: Conditions = field(default_factory=Conditions)
    """Competition knobs; ``reveal_goal`` null means the benchmark's default."""
    video: bool = False
    """A camera (``camera``, ``resolution``) whose frames only ``render()`` returns, never
    the observation: the render worker's replays (:mod:`kinitro.evaluator.render`)."""

    def resolved(self, benchmark: BenchmarkDef) -> EnvConfig:
        """This config with ``conditions.reveal_goal`` explicit (benchmark default if null)."""
        if self.conditions.reveal_goal is not None:
            return self
        reveal = {"reveal_goal": benchmark.goal_observable}
        return replace(self, conditions=self.conditions.model_copy(update=reveal))


@dataclass(frozen=True, slots=True)
class BenchmarkDef:
    """A versioned benchmark: its id, provider and the tasks it evaluates."""

    benchmark_id: str
    provider: str
    tasks: tuple[str, ...]
    description: str = ""
    goal_observable: bool = True


@dataclass(slots=True)
class StepOutcome:
    """One environment step, already reduced to what the rollout loop needs."""

    observation: Observation
    reward: float
    terminated: bool
    truncated: bool
    success: bool
    info: dict[str, Any] = field(default_factory=dict)


class TaskEnv(Protocol):
    """A single task's environment, Gymnasium semantics (terminated vs truncated)."""

    task: str
    action_dim: int

    def reset(self, seed: int) -> Observation: ...

    def step(self, action: npt.NDArray[np.float32]) -> StepOutcome: ...

    def render(self) -> npt.NDArray[np.uint8] | None: ...

    def observation_spec(self) -> ObservationSpec: ...

    def action_spec(self) -> ArraySpec: ...

    def task_info(self) -> dict[str, Any]:
        """What the agent is told at reset: task name, spaces, limits. Never the seed."""
        ...

    def close(self) -> None: ...


class BenchmarkProvider(Protocol):
    """Resolves benchmark ids and builds task environments for one simulator family."""

    name: str

    def benchmarks(self) -> list[BenchmarkDef]: ...

    def resolve(self, benchmark_id: str) -> BenchmarkDef | None: ...

    def make_env(self, benchmark: BenchmarkDef, task: str, config: EnvConfig) -> TaskEnv: ...

    def expert(self, task: str) -> Expert | None:
        """The family's scripted expert for ``task``, if it ships one (baselines only)."""
        ...
