"""Hostile agents against the cgroup limits: memory every way it can be held, processes and
threads, CPU rate, cores.

Each attack runs in the real bubblewrap sandbox with its real cgroup (this host: v1). The
memory attacks hold pages where ``RLIMIT_AS`` cannot see them (memfd, tmpfs, several
processes); the cgroup counts them all, and its OOM kill is reported as the agent's crash
naming the memory limit. The CPU attack saturates every core it can reach from many
threads and processes: the quota holds it to its share and a second sandbox keeps
answering within its deadline.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kinitro.evaluator.agent_client import AgentClient, AgentCrashed, AgentTimeout, CallTimeouts
from kinitro.evaluator.sandbox import BubblewrapSandbox
from kinitro.evaluator.sandbox.cgroups import detect
from kinitro.protocol.agent_rpc import TaskInfo
from kinitro.protocol.common import FailureCause

from .conftest import ACTION_SPEC, OBS_SPEC, SHORT, TIGHT_LIMITS, ZERO_AGENT, BundleFactory
from .hostile import OBS, RunAgent, attack

pytestmark = pytest.mark.skipif(detect() is None, reason="needs a cgroup hierarchy")

MEMORY = 256 * 1024**2  # the limit these attacks try to exceed, several times over
SMALL = replace(TIGHT_LIMITS, memory_bytes=MEMORY, tmp_bytes=4 * MEMORY)


@pytest.fixture
def small(make_bundle: BundleFactory) -> BubblewrapSandbox:
    return BubblewrapSandbox(SMALL)


def run_attack(sandbox: BubblewrapSandbox, bundle: Path, timeouts: CallTimeouts = SHORT) -> str:
    """hello, reset, act: the failure's text (the attack must fail)."""
    with sandbox.start(bundle) as running:
        agent = AgentClient.connect(running.endpoint, OBS_SPEC, ACTION_SPEC, timeouts=timeouts)
        agent.hello()
        agent.reset(TaskInfo("reach-v3"))
        with pytest.raises((AgentCrashed, AgentTimeout)) as exc:
            agent.act(OBS)
        assert exc.value.cause.is_agent_fault
    group = running.cgroup
    assert group is not None and not any(f.parent.exists() for f in group.procs_files)
    return str(exc.value)


SLOW = CallTimeouts(hello=60.0, reset=20.0, act=30.0, close=1.0)

MEMFD_FILL = """
import mmap, os

class Agent:
    def reset(self, task): pass

    def act(self, obs):
        held = []
        for i in range(1024):                       # 4 GiB in 4 MiB memfds (under RLIMIT_FSIZE)
            fd = os.memfd_create(f"hoard{i}")
            os.ftruncate(fd, 4 << 20)
            m = mmap.mmap(fd, 4 << 20)
            os.close(fd)                            # the mapping keeps the memfd alive
            m.write(b"x" * (4 << 20))
            held.append(m)
        return obs[:4].astype("float32")
"""

TMPFS_FILL = """
class Agent:
    def reset(self, task): pass

    def act(self, obs):
        for i in range(1024):                       # /tmp is 1 GiB here, memory 256 MiB
            with open(f"/tmp/fill-{i}", "wb") as f:
                f.write(b"x" * (4 << 20))
        return obs[:4].astype("float32")
"""


@pytest.mark.parametrize("source", [MEMFD_FILL, TMPFS_FILL], ids=["memfd", "tmpfs"])
def test_memory_outside_the_address_space_is_counted(
    source: str, small: BubblewrapSandbox, make_bundle: BundleFactory
) -> None:
    text = run_attack(small, make_bundle(source), SLOW)
    assert f"killed: memory limit ({MEMORY} bytes, cgroup OOM)" in text, text


FORK_TIMES_MEMORY = """
import os, time

class Agent:
    def reset(self, task): pass

    def act(self, obs):
        children = []
        for _ in range(4):                          # 4 × 150 MiB under a 256 MiB limit
            pid = os.fork()
            if pid == 0:
                hoard = bytearray(150 << 20)
                for i in range(0, len(hoard), 4096):
                    hoard[i] = 1
                time.sleep(3)                       # all four held at once
                os._exit(0)
            children.append(pid)
        statuses = [os.waitpid(pid, 0)[1] for pid in children]
        killed = [s for s in statuses if os.WIFSIGNALED(s)]
        raise RuntimeError(f"contained: {len(killed)} of 4 children killed, statuses {statuses}")
"""


def test_fork_times_memory(small: BubblewrapSandbox, make_bundle: BundleFactory) -> None:
    """Four children of 150 MiB each: each is under any per-process limit, together they
    are not. The group's limit kills some; the agent's act fails (crash or timeout)."""
    text = run_attack(small, make_bundle(FORK_TIMES_MEMORY), SLOW)
    assert "contained:" in text or "memory limit" in text, text
    assert "0 of 4 children killed" not in text


THREAD_BOMB = """
import threading

class Agent:
    def reset(self, task): pass

    def act(self, obs):
        threads = []
        try:
            while len(threads) < 10_000:
                t = threading.Thread(target=threading.Event().wait, daemon=True)
                t.start()
                threads.append(t)
        except RuntimeError as exc:
            raise RuntimeError(f"contained at {len(threads)} threads: {exc}")
        return obs[:4].astype("float32")
"""


def test_thread_bomb_hits_the_pids_limit(run_agent: RunAgent, make_bundle: BundleFactory) -> None:
    failure, _ = attack(run_agent, make_bundle(THREAD_BOMB))
    assert isinstance(failure, AgentCrashed) and "contained at" in str(failure)
    count = int(str(failure).rsplit("contained at ", 1)[1].split()[0])
    assert count < TIGHT_LIMITS.max_processes


AFFINITY = """
import os

class Agent:
    def reset(self, task): pass

    def act(self, obs):
        tried = []
        for cores in ({0}, set(range(os.cpu_count())), {os.cpu_count() - 1}):
            try:
                os.sched_setaffinity(0, cores)
                tried.append(f"{sorted(cores)} -> {sorted(os.sched_getaffinity(0))}")
            except OSError as exc:
                tried.append(f"{sorted(cores)}: {exc.strerror}")
        allowed = open("/proc/self/status").read().split("Cpus_allowed_list:")[1].split()[0]
        if sorted(os.sched_getaffinity(0)) != [int(self.core)]:
            return obs[:4].astype("float32")                       # escaped its core
        raise RuntimeError(f"contained on {allowed}: " + "; ".join(tried))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_affinity_cannot_leave_the_workers_core(make_bundle: BundleFactory) -> None:
    core = max(os.sched_getaffinity(0))
    sandbox = BubblewrapSandbox(replace(TIGHT_LIMITS, cpuset=(core,)))
    source = AFFINITY.replace("int(self.core)", str(core))
    text = run_attack(sandbox, make_bundle(source))
    assert f"contained on {core}" in text, text


CPU_HOG = """
import hashlib, os, threading

def burn():
    block = b"x" * (1 << 20)
    while True:
        hashlib.sha256(block).digest()              # releases the GIL: real parallelism

class Agent:
    def reset(self, task): pass

    def act(self, obs):
        for _ in range(3):                          # 3 processes × 5 burners, + 3 here
            if os.fork() == 0:
                for _ in range(4):
                    threading.Thread(target=burn, daemon=True).start()
                burn()
        for _ in range(3):
            threading.Thread(target=burn, daemon=True).start()
        return obs[:4].astype("float32")
"""


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime of all threads
    return total / os.sysconf("SC_CLK_TCK")


def test_cpu_quota_holds_a_many_threaded_hog(make_bundle: BundleFactory) -> None:
    """A hog of 18 threads in 4 processes gets its quota (half a core) and no more, and a
    second sandbox on the same cores keeps answering every step within its deadline."""
    hog_box = BubblewrapSandbox(replace(TIGHT_LIMITS, cpus=0.5))
    calm_box = BubblewrapSandbox(TIGHT_LIMITS)
    deadline = CallTimeouts(hello=60.0, reset=20.0, act=1.0, close=1.0)
    with (
        hog_box.start(make_bundle(CPU_HOG, name="hog")) as hog,
        calm_box.start(make_bundle(ZERO_AGENT, name="calm")) as calm,
    ):
        hog_agent = AgentClient.connect(hog.endpoint, OBS_SPEC, ACTION_SPEC, timeouts=SLOW)
        hog_agent.hello()
        hog_agent.reset(TaskInfo("reach-v3"))
        hog_agent.act(OBS)  # the hog is running from here on
        calm_agent = AgentClient.connect(calm.endpoint, OBS_SPEC, ACTION_SPEC, timeouts=deadline)
        calm_agent.hello()
        calm_agent.reset(TaskInfo("reach-v3"))
        assert hog.cgroup is not None
        start_cpu, start = cpu_seconds(hog.cgroup.pids()), time.monotonic()
        worst = 0.0
        while time.monotonic() - start < 3.0:
            t = time.monotonic()
            calm_agent.act(np.zeros(39))  # raises AgentTimeout past the 1 s deadline
            worst = max(worst, time.monotonic() - t)
            time.sleep(0.01)
        used = cpu_seconds(hog.cgroup.pids()) - start_cpu
        wall = time.monotonic() - start
        assert used <= 0.5 * wall * 1.25 + 0.1, f"hog used {used:.2f} s of CPU in {wall:.2f} s"
        assert worst < deadline.act
    assert FailureCause.AGENT_TIMEOUT.is_agent_fault  # what a slower step would have been
