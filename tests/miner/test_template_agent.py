"""The `kinitro miner init` template really solves Meta-World reach-v3."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

from kinitro.evaluator.envs.base import EnvConfig
from kinitro.evaluator.envs.metaworld import MetaWorldTaskEnv


def test_template_agent_solves_reach(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "kinitro", "miner", "init", str(tmp_path / "agent")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    # Our own template (trusted code): loading it here is fine; the CLI never does.
    spec = importlib.util.spec_from_file_location("template_agent", tmp_path / "agent" / "agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    env = MetaWorldTaskEnv("reach-v3", EnvConfig(max_steps=150))
    agent = module.Agent()
    successes = 0
    for seed in range(5):
        obs = env.reset(seed)
        agent.reset({"task": "reach-v3"})
        for _ in range(150):
            action = agent.act(obs)
            assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)
            outcome = env.step(action)
            obs = outcome.observation
            if outcome.success:
                successes += 1
                break
    agent.close()
    env.close()
    assert successes == 5
