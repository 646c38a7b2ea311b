"""Metrics: Wilson interval, agent vs infrastructure faults, per-task/overall aggregation."""

from __future__ import annotations

import math

import pytest

from kinitro.evaluator.metrics import compute_metrics, wilson_interval
from kinitro.evaluator.results import EpisodeResult


def _ep(i: int, task: str, success: bool, reward: float = 1.0, **kw) -> EpisodeResult:
    return EpisodeResult(
        index=i, task=task, task_episode=i, seed=i, success=success, total_reward=reward, **kw
    )


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(8, 10)
    assert math.isclose(low, 0.4902, abs_tol=1e-3) and math.isclose(high, 0.9433, abs_tol=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 0.9


def test_agent_faults_score_infra_faults_do_not() -> None:
    eps = [
        _ep(0, "reach-v3", True, 10.0, steps_to_success=20),
        _ep(1, "reach-v3", True, 20.0, steps_to_success=40),
        _ep(2, "reach-v3", False, 2.0, failure_cause="agent_crash"),
        _ep(3, "reach-v3", False, 0.0, failure_cause="worker_lost"),
        _ep(4, "push-v3", False, 4.0),
    ]
    m = compute_metrics(eps, ["reach-v3", "push-v3", "door-open-v3"])
    reach = m.per_task["reach-v3"]
    assert reach.episodes == 4 and reach.scored_episodes == 3
    assert reach.successes == 2 and reach.success_rate == pytest.approx(2 / 3)
    assert reach.mean_return == pytest.approx(32 / 3)
    assert reach.mean_steps_to_success == 30
    assert reach.failures == {"agent_crash": 1, "worker_lost": 1}
    assert m.per_task["door-open-v3"].episodes == 0
    assert m.per_task["push-v3"].mean_steps_to_success is None
    assert m.overall.episodes == 5 and m.overall.scored_episodes == 4
    assert m.overall.success_rate == 0.5
    d = m.to_dict()
    assert d["overall"]["failures"] == {"agent_crash": 1, "worker_lost": 1}
