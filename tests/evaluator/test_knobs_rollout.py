"""Competition knobs on the real evaluation path (Ray actors, bubblewrap sandbox, agent RPC):
the job's knobs reach the environment, every logged episode replays under them, and an
image-only observation crosses the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from kinitro.evaluator.replay import load_action_log, replay
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.rollout.port import RolloutOptions
from kinitro.evaluator.runner import EvalRequest, evaluate
from kinitro.protocol.common import BenchmarkSpec

from .conftest import write_bundle

pytestmark = pytest.mark.usefixtures("ray_session")

# Random actions from a generator seeded once per agent instance (not from the task).
JITTER_AGENT = """
import numpy as np

class Agent:
    def __init__(self):
        self.rng = np.random.default_rng(5)

    def reset(self, task):
        pass

    def act(self, observation):
        return self.rng.uniform(-1, 1, 4).astype(np.float32)
"""

# Image only: no state to read; fails loudly if it gets anything else.
PIXELS_AGENT = """
import numpy as np

class Agent:
    def reset(self, task):
        pass

    def act(self, observation):
        assert set(observation) == {"rgb"}, sorted(observation)
        assert observation["rgb"].shape == (24, 32, 3) and observation["rgb"].dtype == np.uint8
        return np.zeros(4, np.float32)
"""


async def test_job_knobs_reach_the_simulator_and_replay(tmp_path: Path) -> None:
    spec = BenchmarkSpec(
        benchmark_id="metaworld/MT1-pick-place-v3",
        tasks=["pick-place-v3"],
        episodes_per_task=2,
        max_steps=30,
        step_log_interval=4,
        conditions={
            "reveal_goal": False,
            "observation_noise": 0.02,
            "action_noise": 0.2,
            "action_delay": 2,
            "dynamics": {"mass": [0.6, 1.5], "friction": [0.6, 1.5], "damping": [0.6, 1.5]},
        },
    )
    bundle = write_bundle(tmp_path / "jitter", JITTER_AGENT)
    media = tmp_path / "media"
    outcome = await evaluate(
        EvalRequest.from_spec("job-knobs", spec, seed=21),
        SandboxLauncher(str(bundle)),
        RolloutOptions(media_url=str(media)),
    )
    assert len(outcome.results) == 2
    for result in outcome.results:
        assert result.failure_cause is None, result.failure_detail
        assert result.actions_ref is not None and result.samples
        assert all(s.observation[-3:] == [0.0, 0.0, 0.0] for s in result.samples)  # goal hidden
        log = load_action_log(result.actions_ref, str(media))
        assert log.conditions == spec.conditions
        report = replay(log, {s.step: s.observation for s in result.samples})
        assert report.ok and report.exact, report
        assert report.observations_checked == len(result.samples)


async def test_image_only_observations_cross_the_sandbox(tmp_path: Path) -> None:
    spec = BenchmarkSpec(
        benchmark_id="metaworld/MT1-reach-v3",
        tasks=["reach-v3"],
        episodes_per_task=1,
        max_steps=4,
        observation_mode="rgb",
        camera="topview",
        resolution=(32, 24),
    )
    bundle = write_bundle(tmp_path / "pixels", PIXELS_AGENT)
    outcome = await evaluate(
        EvalRequest.from_spec("job-pixels", spec, seed=2),
        SandboxLauncher(str(bundle)),
        RolloutOptions(),
    )
    result = outcome.results[0]
    assert result.failure_cause is None, result.failure_detail
    assert result.steps == 4 and result.truncated
    assert all(s.observation == [] for s in result.samples)  # no state was sent
