"""One conformance suite for the Sandbox port, run against both adapters.

``bubblewrap`` runs for real; ``kubernetes`` runs the real adapter against the fake API
server of ``fakekube`` (whose kubelet starts the pod's command locally).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinitro.evaluator.agent_client import AgentClient, AgentCrashed
from kinitro.evaluator.sandbox import BubblewrapSandbox, RunningSandbox, Sandbox, SandboxStartError
from kinitro.protocol.agent_rpc import TaskInfo

from .conftest import ACTION_SPEC, OBS_SPEC, TIGHT_LIMITS, TIMEOUTS, BundleFactory
from .fakekube import make_sandbox

PRINTING_AGENT = """
import os
import numpy as np

class Agent:
    def reset(self, task):
        print("hello from", task.name, flush=True)

    def act(self, obs):
        if obs[0] < 0:
            os._exit(7)
        return np.zeros(4, np.float32)
"""


@pytest.fixture(params=["bubblewrap", "kubernetes"])
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Sandbox:
    if request.param == "bubblewrap":
        return BubblewrapSandbox(TIGHT_LIMITS)
    request.getfixturevalue("hostpath_allowed")
    _kube, url = request.getfixturevalue("fake_kube")
    return make_sandbox(url, tmp_path)


def connect(running: RunningSandbox) -> AgentClient:
    agent = AgentClient.connect(running.endpoint, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS)
    agent.hello()
    agent.reset(TaskInfo("reach-v3"))
    return agent


def test_lifecycle(sandbox: Sandbox, make_bundle: BundleFactory) -> None:
    running = sandbox.start(make_bundle(PRINTING_AGENT))
    try:
        assert isinstance(running, RunningSandbox) and running.alive()
        agent = connect(running)
        assert agent.act(np.zeros(39)).shape == (4,)
        agent.close()
    finally:
        report = running.close()
    assert not running.alive()
    assert b"hello from reach-v3" in report.stdout + report.stderr
    assert running.close() is report  # idempotent


def test_agent_crash_is_reported(sandbox: Sandbox, make_bundle: BundleFactory) -> None:
    with sandbox.start(make_bundle(PRINTING_AGENT)) as running:
        agent = connect(running)
        with pytest.raises(AgentCrashed):
            agent.act(np.full(39, -1.0))


def test_missing_bundle_is_a_start_error(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(SandboxStartError):
        sandbox.start(tmp_path / "no-such-bundle")
