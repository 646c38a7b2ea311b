"""The agent runtime and the client, talking over a real socket (no sandbox: fast paths).

The runtime runs as a real subprocess (``python -m kinitro_agent.runtime``) exactly as the
sandbox starts it; only the isolation is missing here (see ``test_bubblewrap.py``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

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
from kinitro.evaluator.sandbox import AgentEndpoint
from kinitro.protocol import agent_rpc as rpc
from kinitro.protocol.common import FailureCause

from .conftest import (
    ACTION_SPEC,
    OBS_SPEC,
    RUNTIME,
    SHORT,
    TIMEOUTS,
    ZERO_AGENT,
    BundleFactory,
    Launch,
)


def client_for(sock: socket.socket) -> AgentClient:
    return AgentClient(sock, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS)


def test_full_session(launch: Launch, make_bundle: BundleFactory) -> None:
    proc, sock = launch(make_bundle(ZERO_AGENT))
    with client_for(sock) as agent:
        assert agent.hello() == "bundle"
        agent.reset(rpc.TaskInfo("reach-v3", "metaworld/MT1-reach-v3", 500))
        for _ in range(100):
            action = agent.act(np.random.default_rng(0).random(39))
            assert action.dtype == np.float32 and action.shape == (4,)
    assert proc.wait(timeout=5) == 0  # close → close_ok → runtime exits cleanly


def test_python_agent_output_is_coerced(launch: Launch, make_bundle: BundleFactory) -> None:
    src = """
    class Agent:
        def reset(self, task):
            self.name = task.name
        def act(self, observation):
            return [float(observation[0]), 0.5, -0.5, 1]   # a list of Python floats
    """
    _, sock = launch(make_bundle(src))
    with client_for(sock) as agent:
        agent.hello()
        agent.reset(rpc.TaskInfo("reach-v3"))
        obs = np.full(39, 0.25)
        np.testing.assert_array_equal(agent.act(obs), np.array([0.25, 0.5, -0.5, 1], np.float32))


def test_image_observations(launch: Launch, make_bundle: BundleFactory) -> None:
    src = """
    import numpy as np
    class Agent:
        def reset(self, task): pass
        def act(self, obs):
            assert obs["rgb"].shape == (84, 84, 3) and obs["rgb"].dtype == np.uint8
            return np.full(4, obs["rgb"].mean() / 255, np.float32)
    """
    _, sock = launch(make_bundle(src))
    spec = {"state": OBS_SPEC, "rgb": rpc.ArraySpec("uint8", (84, 84, 3))}
    agent = AgentClient(sock, spec, ACTION_SPEC, timeouts=TIMEOUTS)
    agent.hello()
    agent.reset(rpc.TaskInfo("reach-v3"))
    img = np.full((84, 84, 3), 51, np.uint8)
    assert agent.act({"state": np.zeros(39), "rgb": img})[0] == pytest.approx(0.2)
    agent.close()


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"agent.py": "raise ImportError('no torch here')"}, "no torch here"),
        ({"agent.py": "class Other: pass"}, "has no attribute 'Agent'"),
        ({"agent.py": "class Agent:\n    def __init__(self): 1 / 0"}, "ZeroDivisionError"),
        ({"agent.py": "class Agent:\n    def act(self, o): pass"}, "no reset() method"),
        ({"kinitro.toml": 'entrypoint = "agent"'}, "module:Class"),
        ({"kinitro.toml": "not toml ["}, "cannot be read"),
        ({"kinitro.toml": 'entrypoint = "agent:Agent"\nspec_version = 9'}, "v9"),
    ],
)
def test_load_failures_are_agent_crashes(
    launch: Launch, make_bundle: BundleFactory, files: dict[str, str], needle: str
) -> None:
    bundle = make_bundle(ZERO_AGENT)
    for name, content in files.items():
        (bundle / name).write_text(content)
    _, sock = launch(bundle)
    agent = client_for(sock)
    with pytest.raises(AgentCrashed) as exc:
        agent.hello()
    assert exc.value.cause is FailureCause.AGENT_CRASH
    assert "load_failed" in str(exc.value) and needle in str(exc.value)


def test_agent_exception_in_act(launch: Launch, make_bundle: BundleFactory) -> None:
    src = """
    class Agent:
        def reset(self, task): pass
        def act(self, obs): raise ValueError("policy exploded")
    """
    _, sock = launch(make_bundle(src))
    agent = client_for(sock)
    agent.hello()
    agent.reset(rpc.TaskInfo("reach-v3"))
    with pytest.raises(AgentCrashed, match="policy exploded") as exc:
        agent.act(np.zeros(39))
    assert exc.value.call == "act"
    # A failed client stays failed: the episode is over for this sandbox.
    with pytest.raises(AgentCrashed):
        agent.act(np.zeros(39))
    assert agent.broken is exc.value


def test_act_before_hello_is_a_protocol_violation(
    launch: Launch, make_bundle: BundleFactory
) -> None:
    _, sock = launch(make_bundle())
    # No hello: the act deadline also covers loading the agent, so be generous.
    agent = AgentClient(sock, OBS_SPEC, ACTION_SPEC, timeouts=CallTimeouts(act=30.0))
    with pytest.raises(AgentProtocolViolation, match="bad_state"):
        agent.act(np.zeros(39))


def test_crash_mid_episode(launch: Launch, make_bundle: BundleFactory) -> None:
    src = """
    import os
    class Agent:
        def reset(self, task): pass
        def act(self, obs): os._exit(3)
    """
    _, sock = launch(make_bundle(src))
    agent = client_for(sock)
    agent.hello()
    agent.reset(rpc.TaskInfo("reach-v3"))
    with pytest.raises(AgentCrashed, match="connection closed"):
        agent.act(np.zeros(39))


def test_timeout(launch: Launch, make_bundle: BundleFactory) -> None:
    src = """
    import time
    class Agent:
        def reset(self, task): pass
        def act(self, obs): time.sleep(30)
    """
    _, sock = launch(make_bundle(src))
    agent = AgentClient(sock, OBS_SPEC, ACTION_SPEC, timeouts=SHORT)
    agent.hello()
    agent.reset(rpc.TaskInfo("reach-v3"))
    t = time.monotonic()
    with pytest.raises(AgentTimeout) as exc:
        agent.act(np.zeros(39))
    assert exc.value.cause is FailureCause.AGENT_TIMEOUT
    assert SHORT.act <= time.monotonic() - t < SHORT.act + 1.0


def test_invalid_action_reported_by_runtime(launch: Launch, make_bundle: BundleFactory) -> None:
    src = """
    import numpy as np
    class Agent:
        def reset(self, task): pass
        def act(self, obs): return np.zeros(5)
    """
    _, sock = launch(make_bundle(src))
    agent = client_for(sock)
    agent.hello()
    agent.reset(rpc.TaskInfo("reach-v3"))
    with pytest.raises(AgentInvalidAction, match="shape"):
        agent.act(np.zeros(39))


@pytest.mark.parametrize("mode", ["socket", "tcp"])
def test_listening_modes(mode: str, make_bundle: BundleFactory, tmp_path: Path) -> None:
    bundle = make_bundle()
    r, w = os.pipe()
    if mode == "socket":
        where = ["--socket", str(tmp_path / "agent.sock")]
        endpoint = AgentEndpoint(unix_path=str(tmp_path / "agent.sock"))
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        where = ["--tcp", f"127.0.0.1:{port}"]
        endpoint = AgentEndpoint(host="127.0.0.1", port=port)
    proc = subprocess.Popen(
        [*RUNTIME, "--bundle", str(bundle), *where, "--ready-fd", str(w)], pass_fds=(w,)
    )
    os.close(w)
    try:
        assert os.read(r, 16) == b"ready\n"
        for _ in range(2):  # a reconnect is served by the same runtime
            agent = AgentClient.connect(endpoint, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS)
            agent.hello()
            agent.reset(rpc.TaskInfo("reach-v3"))
            assert agent.act(np.zeros(39)).shape == (4,)
            agent._sock.close()  # drop without close: the runtime waits for the next client
        agent = AgentClient.connect(endpoint, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS)
        agent.hello()
        agent.close()
        assert proc.wait(timeout=5) == 0
    finally:
        os.close(r)
        proc.kill()
        proc.wait()


def test_unsupported_client_version(launch: Launch, make_bundle: BundleFactory) -> None:
    _, sock = launch(make_bundle())
    sock.sendall(rpc.encode(rpc.Hello(1, OBS_SPEC, ACTION_SPEC, spec_version=2)))
    reader = rpc.FrameReader()
    sock.settimeout(30)
    resp = rpc.decode_response(reader.read(sock.recv_into))
    assert isinstance(resp, rpc.Error) and resp.code == "unsupported_version" and resp.id == 1


def test_runtime_survives_a_malformed_request(launch: Launch, make_bundle: BundleFactory) -> None:
    _, sock = launch(make_bundle())
    sock.settimeout(30)
    reader = rpc.FrameReader()
    sock.sendall(rpc.frame(b"\xc1"))
    resp = rpc.decode_response(reader.read(sock.recv_into))
    assert isinstance(resp, rpc.Error) and resp.code == "protocol_violation" and resp.id == 0
    agent = client_for(sock)  # the runtime keeps serving the (trusted) evaluator
    agent._next_id = 2
    assert agent.hello() == "bundle"


def test_runtime_cli_help_and_usage_errors(tmp_path: Path) -> None:
    out = subprocess.run([*RUNTIME, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--bundle" in out.stdout and "--tcp" in out.stdout
    bad = subprocess.run(
        [*RUNTIME, "--bundle", str(tmp_path), "--tcp", "no-port"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "HOST:PORT" in bad.stderr + bad.stdout
