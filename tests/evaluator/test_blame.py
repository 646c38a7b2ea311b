"""Fair blame over the real path (Ray actors, bubblewrap sandbox, agent RPC): an agent fault
is charged to the agent on every episode it touched, and no fault buys a replay.

The exploit (issue #16): a bundle with ``slots >= 2`` answers ``act_batch`` with an error
naming a slot that is not in the request whenever an episode looks lost. It used to be
pinned on no episode, every running one was "interrupted" and replayed alone, where it was
interrupted again and recorded as ``internal`` (never scored): the same policy went from
4/6 to 4/4.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.rollout.port import RolloutOptions
from kinitro.evaluator.runner import EvalRequest, evaluate

from .conftest import write_bundle

pytestmark = pytest.mark.usefixtures("ray_session")

# Reaches the goal when it lies at x > 0 (4 of the 6 episodes of seed 11), idles
# otherwise; with EXPLOIT, an idling episode makes the runtime's next error name slot 7.
GIVE_UP_AGENT = """
import sys
import numpy as np


def name_a_foreign_slot():
    # Miner code runs in the runtime's process: reach the server answering this request.
    frame = sys._getframe(1)
    while type(frame.f_locals.get("self")).__name__ != "Server":
        frame = frame.f_back
    server = frame.f_locals["self"]
    fail = type(server).fail
    server.fail = lambda i, code, message, slot=None: fail(server, i, code, message, 7)


class Agent:
    def reset(self, task):
        self.steps = 0
        self.good = None

    def act(self, observation):
        self.steps += 1
        if self.good is None:
            self.good = bool(observation[36] > 0)
        if not self.good:
            if EXPLOIT and self.steps == 5:
                name_a_foreign_slot()
                raise RuntimeError("this episode looks lost")
            return np.zeros(4, np.float32)
        hand, goal = observation[0:3], observation[36:39]
        delta = np.clip((goal - hand) * 10.0, -1.0, 1.0)
        return np.array([delta[0], delta[1], delta[2], 0.0], dtype=np.float32)
"""


def _request(job_id: str) -> EvalRequest:
    return EvalRequest(
        job_id=job_id,
        benchmark_id="metaworld/MT1-reach-v3",
        episodes_per_task=6,
        seed=11,
        max_steps=80,
        step_log_interval=10,
    )


async def test_an_error_naming_a_foreign_slot_is_charged_to_the_whole_batch(
    tmp_path: Path,
) -> None:
    honest = write_bundle(tmp_path / "honest", "EXPLOIT = False\n" + GIVE_UP_AGENT, slots=4)
    cheat = write_bundle(tmp_path / "cheat", "EXPLOIT = True\n" + GIVE_UP_AGENT, slots=4)
    options = RolloutOptions(env_slots=4)
    baseline = await evaluate(_request("job-honest"), SandboxLauncher(str(honest)), options)
    assert baseline.metrics.overall.successes == 4
    assert baseline.metrics.overall.scored_episodes == 6

    outcome = await evaluate(_request("job-cheat"), SandboxLauncher(str(cheat)), options)
    by_index = {r.index: r for r in outcome.results}
    # Episodes 0 and 2 give up at step 5; whatever shared a batch with them goes down too.
    failed = [r for r in outcome.results if r.failure_cause is not None]
    assert {0, 2} <= {r.index for r in failed}
    for result in failed:
        assert result.failure_cause == "protocol_violation", result
        assert "names slot 7" in (result.failure_detail or "")
        assert result.steps == 4
    for result in outcome.results:
        assert result.attempts == 1 and (result in failed or by_index[result.index].success)
    overall = outcome.metrics.overall
    assert overall.failures == {"protocol_violation": len(failed)}  # nothing left to infra
    assert overall.scored_episodes == 6
    assert overall.success_rate < baseline.metrics.overall.success_rate


# Zero actions, 30 ms of "thinking" per step: well inside the 1 s act deadline, so only the
# compute budget stops it from holding the validator for the whole job.
DAWDLING_AGENT = """
import time
import numpy as np

class Agent:
    def reset(self, task):
        pass

    def act(self, observation):
        time.sleep(0.03)
        return np.zeros(4, np.float32)
"""


async def test_a_slow_agent_spends_its_compute_budget_and_the_rest_fails_as_its_timeout(
    tmp_path: Path,
) -> None:
    """4 episodes × 40 steps at 5 ms a step: 0.8 s of agent time. The dawdler uses it in
    its first episode (~27 steps); that episode and every later one fail ``agent_timeout``
    (scored) without being played, instead of taking 4.8 s of the validator's time."""
    bundle = write_bundle(tmp_path / "dawdler", DAWDLING_AGENT)
    request = EvalRequest(
        job_id="job-dawdler",
        benchmark_id="metaworld/MT1-reach-v3",
        episodes_per_task=4,
        seed=11,
        max_steps=40,
        step_allowance_s=0.005,
    )
    outcome = await evaluate(request, SandboxLauncher(str(bundle)), RolloutOptions(env_slots=1))
    assert [r.failure_cause for r in outcome.results] == ["agent_timeout"] * 4
    for result in outcome.results:
        assert "compute budget is exhausted" in (result.failure_detail or "")
    played = sum(r.steps for r in outcome.results)
    assert played < 40, played  # not even one whole episode: 0.8 s / 30 ms ≈ 27 steps
    assert sum(r.steps == 0 for r in outcome.results) >= 3  # never played
    overall = outcome.metrics.overall
    assert overall.scored_episodes == 4 and overall.successes == 0
    compute = outcome.compute
    assert compute is not None and compute.budget_s == pytest.approx(0.8)
    assert compute.budget_s <= compute.used_s < compute.budget_s + 0.2
