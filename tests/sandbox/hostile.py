"""Shared by the hostile-agent suites (``test_hostile*.py``): run one attack bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from kinitro.evaluator.agent_client import AgentClient, AgentFailure, CallTimeouts
from kinitro.evaluator.sandbox.bubblewrap import BubblewrapRunning
from kinitro.protocol.agent_rpc import TaskInfo

RunAgent = Callable[..., tuple[BubblewrapRunning, AgentClient]]
OBS = np.zeros(39)
SECRET = "hunter2-validator-coldkey-secret"


def attack(
    run_agent: RunAgent,
    bundle: Path,
    *,
    metadata: dict[str, str | int] | None = None,
    step: bool = True,
    timeouts: CallTimeouts | None = None,
) -> tuple[AgentFailure, BubblewrapRunning]:
    """Run hello, reset (and one act): return the failure the attack produced."""
    running, agent = run_agent(bundle, *(() if timeouts is None else (timeouts,)))
    try:
        agent.hello()
        agent.reset(TaskInfo("reach-v3", "metaworld/MT1-reach-v3", 500, metadata or {}))
        if step:
            agent.act(OBS)
    except AgentFailure as failure:
        assert failure.cause.is_agent_fault
        return failure, running
    pytest.fail("the attack was not stopped")
