"""Reference-agent baselines of a competition, as stored with it and shown on its page.

Three reference agents are scored on a competition's benchmarks: ``zero`` (no-op
actions), ``random`` (uniform actions) and ``expert`` — Meta-World's hand-written policy
for the true task, the strongest cheat available to a bundle once the simulator is out of
its sandbox. A competition whose expert baseline is high rewards a lookup table, not
robot learning; the admin API refuses to activate one above its ``max_expert_baseline``.

Baselines are computed where the simulator lives (``kinitro evaluator baselines``) and
uploaded with an admin key. ``fingerprint`` ties them to the episodes they describe
(:func:`baseline_fingerprint`): when the benchmarks change, the stored baselines are
dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field

from kinitro.protocol.common import (
    BenchmarkSpec,
    HexSha256,
    NonNegFloat,
    NonNegInt,
    Probability,
    TaskMetrics,
    TaskName,
    UtcDatetime,
    WireModel,
)

ReferenceAgent = Literal["zero", "random", "expert"]
REFERENCE_AGENTS: tuple[ReferenceAgent, ...] = ("zero", "random", "expert")

_EPISODE_FIELDS = ("benchmark_id", "tasks", "max_steps", "conditions")
"""What decides a reference agent's episodes. Not the episode count, the logging, the
observation mode (reference agents never look at images) or ``reveal_task_name`` (the
expert is always given the true task)."""


def baseline_fingerprint(benchmarks: Sequence[BenchmarkSpec]) -> str:
    """sha256 of what decides the reference agents' episodes, over every benchmark."""
    material = [spec.model_dump(mode="json", include=set(_EPISODE_FIELDS)) for spec in benchmarks]
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class BaselineScore(TaskMetrics):
    """One reference agent over every benchmark of a competition (episode-weighted
    metrics, as a submission's), with what its episodes cost."""

    steps: NonNegInt
    """Simulator steps played (their cost is what a submission's evaluation pays)."""
    seconds: NonNegFloat
    """CPU seconds the episodes took in the scoring process (simulation and agent)."""
    per_task: dict[TaskName, Probability] = Field(default_factory=dict)
    """Success rate per task (tasks in several benchmarks are pooled)."""


class Baselines(WireModel):
    """The reference agents' scores on a competition, and how they were measured."""

    version: Literal[1] = 1
    fingerprint: HexSha256
    """:func:`baseline_fingerprint` of the benchmarks they were computed for."""
    seed: NonNegInt
    episodes_per_task: Annotated[int, Field(ge=1, le=10_000)]
    computed_at: UtcDatetime
    kinitro_version: Annotated[str, Field(max_length=64)]
    agents: dict[ReferenceAgent, BaselineScore]

    @property
    def expert(self) -> float | None:
        """The expert's success rate, if it was scored."""
        score = self.agents.get("expert")
        return None if score is None else score.success_rate
