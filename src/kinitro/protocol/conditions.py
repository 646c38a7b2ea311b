"""Competition knobs: the conditions under which a benchmark's episodes are played.

Meta-World ships a hand-written expert policy for every task, and a bundle that looks it
up by task name would own any plain state-based competition. :class:`Conditions` (a field
of :class:`~kinitro.protocol.common.BenchmarkSpec`, versioned) perturbs what the agent
sees and does and the physics it acts in, so that a competition rewards policies that
generalise; ``docs/evaluator.md`` gives each knob's effect and cost. The task-name knob
(``reveal_task_name``), the task set and the observation mode are ``BenchmarkSpec``
fields; the cameras they may name are :data:`METAWORLD_CAMERAS`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from kinitro.protocol.wire import WireModel

SCALE_MIN, SCALE_MAX = 0.1, 10.0
MAX_ACTION_DELAY = 32
METAWORLD_CAMERAS = (
    "corner",
    "corner2",
    "corner3",
    "corner4",
    "topview",
    "behindGripper",
    "gripperPOV",
)
"""The cameras of every Meta-World v3 scene (``BenchmarkSpec.camera``)."""

Scale = Annotated[float, Field(ge=SCALE_MIN, le=SCALE_MAX)]
ObservationMode = Literal["state", "rgb", "state+rgb"]
_META_TEST_SET = re.compile(r"/ML[0-9]+-test-v[0-9]+$")


def is_meta_test_set(benchmark_id: str) -> bool:
    """True for the meta-learning held-out test sets (``metaworld/ML45-test-v3`` …)."""
    return _META_TEST_SET.search(benchmark_id) is not None


class DynamicsRandomization(WireModel):
    """Per-episode ``(low, high)`` scale factors on the simulator's physical parameters.

    Each body's mass (and its inertia with it), each geom's friction coefficients and each
    joint's damping is multiplied by its own factor, drawn uniformly from the range once
    per episode before the reset. ``(1, 1)`` keeps the nominal value.
    """

    mass: tuple[Scale, Scale] = (1.0, 1.0)
    friction: tuple[Scale, Scale] = (1.0, 1.0)
    damping: tuple[Scale, Scale] = (1.0, 1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        for name in ("mass", "friction", "damping"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: low {low} exceeds high {high}")
        return self

    @property
    def enabled(self) -> bool:
        """True when any range differs from the nominal ``(1, 1)``."""
        return any(r != (1.0, 1.0) for r in (self.mass, self.friction, self.damping))


class Conditions(WireModel):
    """Competition knobs: how a benchmark's episodes are perturbed (all off by default).

    * ``reveal_goal`` — false: the goal coordinates are zeros in the state and the goal
      marker is not drawn in camera images (Meta-World's ML test-task convention). Null
      means the benchmark's default (hidden for meta-learning test sets); a
      :class:`BenchmarkSpec` resolves it, so every job records an explicit value.
    * ``observation_noise`` — Gaussian noise (standard deviation, in the state vector's
      units: metres for positions) on every state the agent sees.
    * ``action_noise`` — Gaussian noise (standard deviation, in action units) on every
      action the simulator executes, clipped to ``[-1, 1]``.
    * ``action_delay`` — the simulator executes the action chosen that many steps
      earlier (no-op actions at first).
    * ``dynamics`` — :class:`DynamicsRandomization`.

    Every draw comes from the episode seed through one stream per knob, so an episode
    replays exactly from its seed and the agent's actions. ``version`` is bumped whenever
    the same fields would give a different episode.
    """

    version: Literal[1] = 1
    reveal_goal: bool | None = None
    observation_noise: Annotated[float, Field(ge=0, le=1)] = 0.0
    action_noise: Annotated[float, Field(ge=0, le=2)] = 0.0
    action_delay: Annotated[int, Field(ge=0, le=MAX_ACTION_DELAY)] = 0
    dynamics: DynamicsRandomization = DynamicsRandomization()
