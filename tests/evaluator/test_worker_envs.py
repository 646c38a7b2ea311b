"""A rollout worker never hands an environment whose simulator raised to another episode
(of its job, or of the next job once the worker is kept warm)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kinitro.evaluator.envs import EnvConfig, get_benchmark
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.rollout.worker import RolloutWorker, WorkerConfig
from kinitro.evaluator.runner import plan_episodes


def test_an_environment_whose_simulator_raised_is_replaced(
    bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = get_benchmark("metaworld/MT1-reach-v3")
    config = WorkerConfig(
        job_id="sim-error",
        benchmark=bench,
        env=EnvConfig(max_steps=20),
        launcher=SandboxLauncher(str(bundles["reach"])),
        pin_core=False,
        env_slots=4,
    )
    plan = plan_episodes(bench, 8, 3)
    worker = RolloutWorker(config)
    try:
        results, _ = worker.run_episodes(plan[:4])
        assert [r.failure_cause for r in results] == [None] * 4
        envs = list(worker._envs["reach-v3"])
        assert len(envs) == 4

        def explode(action: Any) -> Any:
            raise RuntimeError("simulator blew up")

        monkeypatch.setattr(envs[1], "step", explode)
        results, _ = worker.run_episodes(plan[4:8])
        assert [r.failure_cause for r in results] == [None, "simulator_error", None, None]
        assert worker._envs["reach-v3"] == envs[:1]  # slot 1 on: closed, built again
        results, _ = worker.run_episodes(plan[:4])
        assert [r.failure_cause for r in results] == [None] * 4
        fresh = worker._envs["reach-v3"]
        assert fresh[0] is envs[0] and all(e is not old for e in fresh[1:] for old in envs)
        assert worker.times().envs_built == 7
    finally:
        worker.close()
