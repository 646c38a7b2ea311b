"""Fixtures for the sandbox, runtime and agent client tests.

Bundles are written from source strings into world-readable directories (the bubblewrap
sandbox runs the agent as an unprivileged uid). Limits and deadlines are tight so the whole
hostile-agent suite stays fast.
"""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import kinitro.evaluator.sandbox.kubernetes as k8s
from kinitro.evaluator.agent_client import AgentClient, CallTimeouts
from kinitro.evaluator.sandbox import BubblewrapSandbox, SandboxLimits
from kinitro.evaluator.sandbox.agent_env import AgentEnvironment
from kinitro.evaluator.sandbox.base import RUNTIME_MODULE
from kinitro.evaluator.sandbox.bubblewrap import BubblewrapRunning
from kinitro.protocol.agent_rpc import ArraySpec

from .fakekube import FakeKube, make_handler

OBS_SPEC = ArraySpec("float64", (39,))
ACTION_SPEC = ArraySpec("float32", (4,), -1.0, 1.0)
# Calls that should succeed get generous deadlines (the 2-core test machine can be very
# loaded); tests that *expect* a timeout use SHORT so the suite stays fast.
TIMEOUTS = CallTimeouts(hello=60.0, reset=20.0, act=20.0, close=2.0)
SHORT = CallTimeouts(hello=60.0, reset=2.0, act=2.0, close=0.5)
TIGHT_LIMITS = SandboxLimits(
    cpu_seconds=20,
    memory_bytes=1024**3,
    max_processes=32,
    max_open_files=64,
    max_file_size=8 * 1024**2,
    tmp_bytes=16 * 1024**2,
    start_timeout_s=20.0,
    output_bytes=64 * 1024,
)

ZERO_AGENT = """
import numpy as np

class Agent:
    def __init__(self):
        self.action = np.zeros(4, np.float32)

    def reset(self, task):
        self.task = task

    def act(self, observation):
        return self.action
"""

BundleFactory = Callable[..., Path]


def write_bundle(
    root: Path, source: str, *, entrypoint: str = "agent:Agent", manifest_extra: str = ""
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "kinitro.toml").write_text(
        f'name = "{root.name}"\nentrypoint = "{entrypoint}"\nspec_version = 1\n{manifest_extra}'
    )
    (root / "agent.py").write_text(textwrap.dedent(source))
    os.chmod(root, 0o755)
    for p in root.iterdir():
        os.chmod(p, 0o644)
    return root


@pytest.fixture
def make_bundle(tmp_path: Path) -> BundleFactory:
    def make(source: str = ZERO_AGENT, name: str = "bundle", **kw: str) -> Path:
        return write_bundle(tmp_path / name, source, **kw)

    return make


AGENT_PYTHON = str(AgentEnvironment.find().python)
"""The agent environment's interpreter: the runtime runs there, as in the sandbox."""
RUNTIME = [AGENT_PYTHON, "-m", RUNTIME_MODULE]

Launch = Callable[..., tuple[subprocess.Popen[bytes], socket.socket]]


@pytest.fixture
def launch() -> Iterator[Launch]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(bundle: Path) -> tuple[subprocess.Popen[bytes], socket.socket]:
        parent, child = socket.socketpair()
        proc = subprocess.Popen(
            [*RUNTIME, "--bundle", str(bundle), "--fd", str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdout=subprocess.DEVNULL,
        )
        child.close()
        procs.append(proc)
        return proc, parent

    yield start
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture(scope="session")
def sandbox() -> BubblewrapSandbox:
    return BubblewrapSandbox(TIGHT_LIMITS)


def processes_of_uid(uid: int) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            status = (d / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:") and int(line.split()[1]) == uid:
                pids.append(int(d.name))
    return pids


@pytest.fixture
def run_agent(
    sandbox: BubblewrapSandbox,
) -> Iterator[Callable[[Path], tuple[BubblewrapRunning, AgentClient]]]:
    """Start a bundle and connect; on teardown close both and check nothing is left."""
    started: list[tuple[BubblewrapRunning, AgentClient]] = []

    def run(
        bundle: Path, timeouts: CallTimeouts = TIMEOUTS
    ) -> tuple[BubblewrapRunning, AgentClient]:
        running = sandbox.start(bundle)
        client = AgentClient.connect(running.endpoint, OBS_SPEC, ACTION_SPEC, timeouts=timeouts)
        started.append((running, client))
        return running, client

    yield run
    for running, client in started:
        client.close()
        running.close()
        assert not running.alive()
        assert processes_of_uid(running.uid) == [], "sandbox processes survived close()"
        if running.cgroup is not None:
            assert not any(f.parent.exists() for f in running.cgroup.procs_files), "cgroup left"


@pytest.fixture
def fake_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeKube, str]]:
    kube = FakeKube(AGENT_PYTHON, tmp_path_factory.mktemp("kubelet-logs"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(kube))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield kube, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    for proc in kube.procs.values():
        proc.kill()
        proc.wait()


@pytest.fixture
def hostpath_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    original = k8s.pod_manifest

    def patched(*args: Any) -> dict[str, Any]:
        m = original(*args)
        m["metadata"]["labels"]["test/allow-hostpath"] = "true"
        return m

    monkeypatch.setattr(k8s, "pod_manifest", patched)
