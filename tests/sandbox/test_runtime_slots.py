"""Slots: several concurrent episodes on one connection, one agent instance each, stepped
together by ``act_batch`` (runtime as a real subprocess, real socket)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from kinitro.evaluator.agent_client import (
    AgentClient,
    AgentCrashed,
    AgentInvalidAction,
    AgentProtocolViolation,
    AgentTimeout,
    CallTimeouts,
)
from kinitro.protocol import agent_rpc as rpc
from kinitro.protocol.common import FailureCause

from .conftest import ACTION_SPEC, OBS_SPEC, TIMEOUTS, BundleFactory, Launch

COUNTING_AGENT = """
import numpy as np

class Agent:
    instances = 0

    def __init__(self):
        Agent.instances += 1
        self.instance = Agent.instances
        self.calls = 0
        self.episode = -1

    def reset(self, task):
        self.episode = task.max_steps  # any per-reset value the test sets
        self.calls = 0

    def act(self, observation):
        self.calls += 1
        return np.array([self.instance, self.episode, self.calls, observation[0]], np.float32)
"""


def _client(launch: Launch, make_bundle: BundleFactory, source: str, slots: str) -> AgentClient:
    _, sock = launch(make_bundle(source, manifest_extra=slots))
    return AgentClient(sock, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS)


def test_slots_are_granted_up_to_the_manifest(launch: Launch, make_bundle: BundleFactory) -> None:
    agent = _client(launch, make_bundle, COUNTING_AGENT, "slots = 4\n")
    agent.hello(slots=8)
    assert agent.slots == 4
    agent.close()
    single = _client(launch, make_bundle, COUNTING_AGENT, "")
    single.hello(slots=8)
    assert single.slots == 1  # a bundle that does not opt in keeps one instance
    single.close()


def test_act_batch_steps_each_slot_with_its_own_instance(
    launch: Launch, make_bundle: BundleFactory
) -> None:
    agent = _client(launch, make_bundle, COUNTING_AGENT, "slots = 3\n")
    agent.hello(slots=3)
    for slot in range(3):
        agent.reset(rpc.TaskInfo("reach-v3", max_steps=10 + slot), slot=slot)
    obs = np.zeros((3, 39))
    obs[:, 0] = [0.5, 1.5, 2.5]
    first = agent.act_batch([0, 1, 2], obs)
    assert first.dtype == np.float32 and first.shape == (3, 4)
    assert first[:, 1].tolist() == [10, 11, 12]  # each slot remembers its own task
    assert first[:, 3].tolist() == [0.5, 1.5, 2.5]  # and gets its own observation
    assert len(set(first[:, 0].tolist())) == 3  # three distinct instances
    # A subset of slots, in any order: only those instances are called.
    second = agent.act_batch([2, 0], obs[[2, 0]])
    assert second[:, 1].tolist() == [12, 10] and second[:, 2].tolist() == [2, 2]
    third = agent.act_batch([1], obs[[1]])
    assert third[0, 2] == 2
    # The single-step call is slot 0.
    assert agent.act(obs[0])[2] == 3
    agent.close()


def test_agent_exception_names_its_slot(launch: Launch, make_bundle: BundleFactory) -> None:
    src = """
    import numpy as np
    class Agent:
        def reset(self, task): self.bad = task.max_steps == 1
        def act(self, obs):
            if self.bad:
                raise RuntimeError("slot policy exploded")
            return np.zeros(4, np.float32)
    """
    agent = _client(launch, make_bundle, src, "slots = 2\n")
    agent.hello(slots=2)
    agent.reset(rpc.TaskInfo("reach-v3", max_steps=0), slot=0)
    agent.reset(rpc.TaskInfo("reach-v3", max_steps=1), slot=1)
    with pytest.raises(AgentCrashed, match="slot policy exploded") as exc:
        agent.act_batch([0, 1], np.zeros((2, 39)))
    assert exc.value.slot == 1 and exc.value.call == "act_batch"


def test_invalid_action_names_its_slot(launch: Launch, make_bundle: BundleFactory) -> None:
    src = """
    import numpy as np
    class Agent:
        def reset(self, task): self.nan = task.max_steps == 0
        def act(self, obs):
            return np.full(4, np.nan if self.nan else 0.0, np.float32)
    """
    agent = _client(launch, make_bundle, src, "slots = 2\n")
    agent.hello(slots=2)
    agent.reset(rpc.TaskInfo("reach-v3", max_steps=1), slot=1)
    agent.reset(rpc.TaskInfo("reach-v3", max_steps=0), slot=0)
    with pytest.raises(AgentInvalidAction) as exc:
        agent.act_batch([1, 0], np.zeros((2, 39)))
    assert exc.value.slot == 0


def test_slot_not_granted_is_refused(launch: Launch, make_bundle: BundleFactory) -> None:
    agent = _client(launch, make_bundle, COUNTING_AGENT, "slots = 2\n")
    agent.hello(slots=2)
    with pytest.raises(AgentProtocolViolation, match="slot 5 not granted"):
        agent.reset(rpc.TaskInfo("reach-v3"), slot=5)


def test_constructor_failing_for_a_second_instance(
    launch: Launch, make_bundle: BundleFactory
) -> None:
    src = """
    class Agent:
        made = 0
        def __init__(self):
            Agent.made += 1
            if Agent.made > 1:
                raise MemoryError("no room for another policy")
        def reset(self, task): pass
        def act(self, obs): return [0, 0, 0, 0]
    """
    agent = _client(launch, make_bundle, src, "slots = 4\n")
    with pytest.raises(AgentCrashed, match="no room for another policy"):
        agent.hello(slots=4)


def test_codec_rejects_badly_stacked_batches() -> None:
    frame = rpc.encode(rpc.ActBatch(1, (0, 1, 2), np.zeros((2, 39))))
    with pytest.raises(rpc.InvalidMessage, match="must stack 3 observations"):
        rpc.decode_request(frame[4:])
    for slots in ([], [0, 0], [rpc.MAX_SLOTS], ["a"]):
        body = rpc.packb(
            {
                "type": "act_batch",
                "id": 1,
                "slots": slots,
                "observations": rpc.encode_array(np.zeros((max(1, len(slots)), 39))),
            }
        )
        with pytest.raises(rpc.InvalidMessage, match=r"act_batch\.slots"):
            rpc.decode_request(body)
    ok = rpc.encode(rpc.Actions(7, np.zeros((2, 4), np.float32)))
    with pytest.raises(rpc.InvalidMessage, match="actions for 2 slots, the request had 3"):
        rpc.decode_actions(ok[4:], 7, ACTION_SPEC, (0, 1, 2))
    actions = np.zeros((2, 4), np.float32)
    actions[1, 2] = np.inf
    bad = rpc.encode(rpc.Actions(7, actions))
    with pytest.raises(rpc.NonFiniteValue, match="slot 5") as exc:
        rpc.decode_actions(bad[4:], 7, ACTION_SPEC, (3, 5))
    assert exc.value.slot == 5


def test_a_hang_in_one_slot_times_out_the_batch(launch: Launch, make_bundle: BundleFactory) -> None:
    """The deadline of act_batch is the act deadline once per slot; a timeout names no
    slot (the client cannot know whose policy hung)."""
    src = """
    import time
    import numpy as np
    class Agent:
        def reset(self, task): self.hang = task.max_steps == 1
        def act(self, obs):
            if self.hang:
                time.sleep(30)
            return np.zeros(4, np.float32)
    """
    _, sock = launch(make_bundle(src, manifest_extra="slots = 2\n"))
    agent = AgentClient(sock, OBS_SPEC, ACTION_SPEC, timeouts=CallTimeouts(act=0.5, reset=20))
    agent.hello(slots=2)
    agent.reset(rpc.TaskInfo("reach-v3", max_steps=0), slot=0)
    agent.reset(rpc.TaskInfo("reach-v3", max_steps=1), slot=1)
    started = time.monotonic()
    with pytest.raises(AgentTimeout, match=r"within 1\.0 s") as exc:
        agent.act_batch([0, 1], np.zeros((2, 39)))
    assert 1.0 <= time.monotonic() - started < 3.0
    assert exc.value.slot is None and exc.value.cause is FailureCause.AGENT_TIMEOUT
