"""What an agent can learn about its episode (threat 4 of sealed rounds), played through
the real path: Ray rollout worker, bubblewrap sandbox, agent RPC.

A spy agent reports everything ``reset`` hands it by raising it back as its crash message
(the only channel out of the sandbox). It must never see the seed or the episode's place
in the job, and with ``reveal_task_name = false`` not the task name either.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kinitro.evaluator.envs import get_benchmark
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.rollout.port import RolloutOptions
from kinitro.evaluator.runner import EvalRequest, evaluate, plan_episodes

from .conftest import write_bundle

pytestmark = pytest.mark.usefixtures("ray_session")

SPY_AGENT = """
import json

class Agent:
    def reset(self, task):
        raise RuntimeError("SPY" + json.dumps(dict(task), sort_keys=True) + "YPS")

    def act(self, observation):
        raise AssertionError("never called")
"""


def _seen(detail: str | None) -> dict[str, object]:
    assert detail and "SPY" in detail, detail
    return dict(json.loads(detail.rsplit("SPY", 1)[1].split("YPS", 1)[0]))  # the message


@pytest.mark.parametrize(
    ("benchmark_id", "reveal"),
    [("metaworld/ML10-test-v3", False), ("metaworld/MT1-reach-v3", True)],
)
async def test_the_agent_is_told_the_task_only_when_the_competition_reveals_it(
    tmp_path: Path, benchmark_id: str, reveal: bool
) -> None:
    tasks = get_benchmark(benchmark_id).tasks[:2]
    request = EvalRequest(
        job_id="job-spy",
        benchmark_id=benchmark_id,
        tasks=tuple(tasks),
        episodes_per_task=2,
        seed=123456789,
        max_steps=20,
        reveal_task_name=reveal,
    )
    spy = write_bundle(tmp_path / "spy", SPY_AGENT)
    outcome = await evaluate(request, SandboxLauncher(str(spy)), RolloutOptions(env_slots=1))
    assert [r.failure_cause for r in outcome.results] == ["agent_crash"] * len(outcome.results)
    for result in outcome.results:
        seen = _seen(result.failure_detail)
        assert sorted(seen) == ["benchmark_id", "max_steps", "metadata", "name"], seen
        assert seen["name"] == (result.task if reveal else "")
        assert seen["benchmark_id"] == benchmark_id and seen["max_steps"] == 20
        text = json.dumps(seen)
        for secret in (request.seed, result.seed):  # neither the job's nor the episode's
            assert str(secret) not in text and f"{secret:x}" not in text


def test_hidden_task_names_also_hide_the_play_order() -> None:
    """Counting resets must not tell the task: with hidden names the episodes are played
    in an order drawn from the (secret) seed; indices and seeds do not change."""
    bench = get_benchmark("metaworld/ML10-test-v3")
    plain = plan_episodes(bench, 3, 42)
    assert [s.task for s in plain] == [t for t in bench.tasks for _ in range(3)]
    orders = set()
    for seed in (42, 43, 44):
        shuffled = plan_episodes(bench, 3, seed, shuffle=True)
        assert sorted(shuffled, key=lambda s: s.index) == plan_episodes(bench, 3, seed)
        assert shuffled == plan_episodes(bench, 3, seed, shuffle=True)  # reproducible
        orders.add(tuple(s.index for s in shuffled))
    assert len(orders) == 3 and tuple(range(len(plain))) not in orders
