"""Competition presets: documented starting points for an operator.

A preset is a set of benchmarks with their knobs and a ``max_expert_baseline``; the admin
API creates a competition from one (``"preset": "generalization"`` in the body, explicit
fields win) and ``kinitro evaluator baselines --preset NAME`` scores the reference agents
on it. ``docs/evaluator.md`` lists each preset's measured baselines and evaluation cost.

* ``generalization`` — Meta-World's held-out ML45 test tasks, task name and goal hidden,
  observation and action noise, a 2-step action delay and dynamics randomization: the
  scripted experts, given the true task, lose most of their success.
* ``vision`` — the MT10 tasks seen only through an 84×84 camera image (the goal marker is
  drawn), task name hidden, action noise, delay and dynamics randomization. No state is
  sent, so a bundle must learn to perceive; the expert baseline assumes perfect
  perception (it reads the state) and is an upper bound, hence no activation limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from kinitro.protocol.common import BenchmarkSpec
from kinitro.protocol.conditions import Conditions, DynamicsRandomization

ML45_TEST_TASKS = (
    "bin-picking-v3",
    "box-close-v3",
    "hand-insert-v3",
    "door-lock-v3",
    "door-unlock-v3",
)
MT10_TASKS = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    title: str
    description: str
    benchmarks: tuple[BenchmarkSpec, ...]
    max_expert_baseline: float | None

    def competition_fields(self) -> dict[str, object]:
        """The competition-definition fields this preset sets (admin API body)."""
        return {
            "description": self.description,
            "benchmarks": [spec.model_dump(mode="json") for spec in self.benchmarks],
            "max_expert_baseline": self.max_expert_baseline,
        }


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="generalization",
            title="Held-out tasks, hidden task and goal, noise and randomization",
            description=(
                "Meta-World's five held-out ML45 test tasks. The agent is told neither the "
                "task nor the goal; it sees the state with 1 cm of noise, its actions are "
                "noisy and executed 2 steps late, and masses, friction and damping vary "
                "by up to 1.4x per episode."
            ),
            benchmarks=(
                BenchmarkSpec(
                    benchmark_id="metaworld/ML45-test-v3",
                    tasks=list(ML45_TEST_TASKS),
                    episodes_per_task=10,
                    max_steps=500,
                    reveal_task_name=False,
                    conditions=Conditions(
                        reveal_goal=False,
                        observation_noise=0.01,
                        action_noise=0.1,
                        action_delay=2,
                        dynamics=DynamicsRandomization(
                            mass=(0.7, 1.4), friction=(0.7, 1.4), damping=(0.7, 1.4)
                        ),
                    ),
                ),
            ),
            max_expert_baseline=0.35,
        ),
        Preset(
            name="vision",
            title="MT10 from an 84x84 camera image",
            description=(
                "The ten MT10 tasks seen only through the corner camera at 84x84 (the goal "
                "marker is drawn); the task is not named, actions are noisy and executed "
                "one step late, and masses, friction and damping vary by up to 1.25x."
            ),
            benchmarks=(
                BenchmarkSpec(
                    benchmark_id="metaworld/MT10-v3",
                    tasks=list(MT10_TASKS),
                    episodes_per_task=3,
                    max_steps=200,
                    observation_mode="rgb",
                    camera="corner",
                    resolution=(84, 84),
                    reveal_task_name=False,
                    conditions=Conditions(
                        reveal_goal=True,
                        action_noise=0.1,
                        action_delay=1,
                        dynamics=DynamicsRandomization(
                            mass=(0.8, 1.25), friction=(0.8, 1.25), damping=(0.8, 1.25)
                        ),
                    ),
                ),
            ),
            max_expert_baseline=None,
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; one of {', '.join(PRESETS)}") from None
