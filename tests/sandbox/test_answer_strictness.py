"""An answer that does not answer the request is the agent's protocol violation, pinned on
no slot (so the rollout charges every episode of the batch): an ``error`` naming a slot the
request did not have, ``actions`` for another number of slots, an answer to another request
id. Miner code runs inside the runtime process, so the bundles below reach the runtime's
server from ``act`` and bend its next answer (runtime as a real subprocess, real socket)."""

from __future__ import annotations

import numpy as np
import pytest

from kinitro.evaluator.agent_client import AgentClient, AgentProtocolViolation
from kinitro.protocol import agent_rpc as rpc
from kinitro.protocol.common import FailureCause

from .conftest import ACTION_SPEC, OBS_SPEC, TIMEOUTS, BundleFactory, Launch

BENDING_AGENT = """
import sys
import numpy as np
from kinitro_agent import rpc


def server():
    frame = sys._getframe(1)
    while type(frame.f_locals.get("self")).__name__ != "Server":
        frame = frame.f_back
    return frame.f_locals["self"]


class RowsDropped:
    # The runtime's socket, answering ``actions`` without their last row.
    def __init__(self, conn):
        self.conn = conn

    def sendall(self, data):
        msg = rpc.decode_response(bytes(data[4:]))
        if isinstance(msg, rpc.Actions):
            data = rpc.encode(rpc.Actions(msg.id, msg.actions[:-1]))
        self.conn.sendall(data)


class Agent:
    def reset(self, task):
        pass

    def act(self, observation):
        srv = server()
        fail = type(srv).fail
        if BEND == "foreign_slot":
            srv.fail = lambda i, code, message, slot=None: fail(srv, i, code, message, 7)
            raise RuntimeError("blame slot 7")
        if BEND == "other_id":
            srv.fail = lambda i, code, message, slot=None: fail(srv, i + 1, code, message, slot)
            raise RuntimeError("answer another request")
        if BEND == "missing_row" and not isinstance(srv.conn, RowsDropped):
            srv.conn = RowsDropped(srv.conn)
        return np.zeros(4, np.float32)
"""


def _agent(launch: Launch, make_bundle: BundleFactory, bend: str, slots: int) -> AgentClient:
    source = f"BEND = {bend!r}\n" + BENDING_AGENT
    _, sock = launch(make_bundle(source, manifest_extra=f"slots = {slots}\n"))
    agent = AgentClient(sock, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS)
    agent.hello(slots=slots)
    for slot in range(slots):
        agent.reset(rpc.TaskInfo("reach-v3"), slot=slot)
    return agent


@pytest.mark.parametrize(
    ("bend", "match"),
    [
        ("foreign_slot", r"names slot 7, the request had \[0, 1\]"),
        ("other_id", "expected 'actions' for request"),
        ("missing_row", "actions for 1 slots, the request had 2"),
    ],
)
def test_act_batch_answers_for_other_slots_are_protocol_violations(
    launch: Launch, make_bundle: BundleFactory, bend: str, match: str
) -> None:
    agent = _agent(launch, make_bundle, bend, 2)
    with pytest.raises(AgentProtocolViolation, match=match) as exc:
        agent.act_batch([0, 1], np.zeros((2, 39)))
    assert exc.value.slot is None  # pinned on no slot: every episode of the batch pays
    assert exc.value.cause is FailureCause.PROTOCOL_VIOLATION
    with pytest.raises(AgentProtocolViolation):  # the connection is not used again
        agent.act_batch([0, 1], np.zeros((2, 39)))


def test_act_error_naming_a_slot_is_a_protocol_violation(
    launch: Launch, make_bundle: BundleFactory
) -> None:
    """``act`` steps slot 0: an error naming slot 7 does not answer it."""
    agent = _agent(launch, make_bundle, "foreign_slot", 1)
    with pytest.raises(AgentProtocolViolation, match=r"names slot 7, the request had \[0\]") as exc:
        agent.act(np.zeros(39))
    assert exc.value.slot is None


def test_an_error_naming_a_slot_of_the_request_stays_that_slots(
    launch: Launch, make_bundle: BundleFactory
) -> None:
    """The strictness check leaves genuine per-slot faults alone."""
    source = """
    import numpy as np
    class Agent:
        def reset(self, task): self.bad = task.max_steps == 1
        def act(self, observation):
            if self.bad:
                raise ValueError("slot one broke")
            return np.zeros(4, np.float32)
    """
    _, sock = launch(make_bundle(source, manifest_extra="slots = 2\n"))
    agent = AgentClient(sock, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS)
    agent.hello(slots=2)
    agent.reset(rpc.TaskInfo("reach-v3", max_steps=0), slot=0)
    agent.reset(rpc.TaskInfo("reach-v3", max_steps=1), slot=1)
    with pytest.raises(Exception, match="slot one broke") as exc:
        agent.act_batch([0, 1], np.zeros((2, 39)))
    assert getattr(exc.value, "slot", None) == 1
    assert getattr(exc.value, "cause", None) is FailureCause.AGENT_CRASH
