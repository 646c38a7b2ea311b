"""A started bubblewrap sandbox: readiness, liveness, how it ended, and a total kill.

Closing SIGKILLs the pid namespace's init (its host pid comes from ``bwrap --info-fd``): the
kernel then kills every process in the namespace, even ``setsid`` ones, and bwrap exits
once the init is reaped; then every process left in the sandbox's cgroup is killed and the
group removed, and, when the sandbox has its own uid, any process left with that uid.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import select
import signal
import socket
import subprocess
import threading
import time
from types import TracebackType

from kinitro.evaluator.sandbox.base import (
    AgentEndpoint,
    OutputCapture,
    SandboxExit,
    SandboxLimits,
    SandboxStartError,
)
from kinitro.evaluator.sandbox.cgroups import CgroupError, SandboxCgroup

log = logging.getLogger(__name__)

UID_LOW, UID_HIGH = 100_000, 160_000

_uids_in_use: set[int] = set()
_uids_lock = threading.Lock()


def allocate_uid() -> int:
    with _uids_lock:
        while True:
            uid = random.randrange(UID_LOW, UID_HIGH)
            if uid not in _uids_in_use:
                _uids_in_use.add(uid)
                return uid


def release_uid(uid: int) -> None:
    with _uids_lock:
        _uids_in_use.discard(uid)


class BubblewrapRunning:
    """A started bubblewrap sandbox (see :class:`~kinitro.evaluator.sandbox.RunningSandbox`)."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        sock: socket.socket,
        uid: int,
        limits: SandboxLimits,
        unique_uid: bool = True,
        *,
        cgroup: SandboxCgroup | None = None,
    ) -> None:
        self.proc = proc
        self.uid = uid
        self.cgroup = cgroup
        """The sandbox's own cgroup (memory, pids, CPU quota, cpuset), if it has one."""
        self._oom = False
        self.unique_uid = unique_uid
        self.init_pid: int | None = None
        """Host pid of the sandbox's pid-namespace init (from ``bwrap --info-fd``)."""
        self.limits = limits
        self._sock = sock
        self._stdout = OutputCapture(proc.stdout, limits.output_bytes, f"sbx-{proc.pid}-out")
        self._stderr = OutputCapture(proc.stderr, limits.output_bytes, f"sbx-{proc.pid}-err")
        self._exit: SandboxExit | None = None
        self._killed = False
        self.endpoint = AgentEndpoint(sock=sock, describe_exit=self.describe_exit)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, ready_fd: int, info_fd: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ready, info = b"", b""
        fds = [ready_fd, info_fd]
        while b"\n" not in ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxStartError(f"sandbox not ready within {timeout} s")
            r, _, _ = select.select(fds, [], [], remaining)
            for fd in r:
                chunk = os.read(fd, 4096)
                if fd == info_fd:
                    info += chunk
                    if not chunk:
                        fds.remove(info_fd)
                        self._parse_info(info)
                    continue
                if not chunk:
                    self.proc.wait(timeout=2)
                    self._stderr.join(1)
                    err = bytes(self._stderr.data[-2000:]).decode("utf-8", "replace").strip()
                    raise SandboxStartError(
                        f"sandbox exited before it was ready (code {self.proc.returncode}): {err}"
                    )
                ready += chunk
        if self.init_pid is None:
            self._parse_info(info)

    def _parse_info(self, info: bytes) -> None:
        try:
            self.init_pid = int(json.loads(info)["child-pid"])
        except (ValueError, KeyError, TypeError):
            self.init_pid = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pids(self) -> list[int]:
        """Host pids of the processes inside the sandbox (below its pid-namespace init)."""
        if self.init_pid is None:
            return []
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/stat", "rb") as f:
                        ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        out: list[int] = []
        todo = [self.init_pid]
        while todo:
            kids = children.get(todo.pop(), [])
            out += kids
            todo += kids
        return out

    def describe_exit(self, wait: float = 0.5) -> str | None:
        """How the sandbox ended, if it has (waits briefly for a dying process)."""
        try:
            code = self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None
        # the reader thread may not have drained the pipe yet (a loaded host): the
        # stderr tail is what tells a miner why the agent died
        self._stderr.join(1)
        return self._describe(code)

    def _describe(self, code: int | None) -> str | None:
        if self._oom_killed():
            return f"killed: memory limit ({self.limits.memory_bytes} bytes, cgroup OOM)"
        return _describe_code(code, self._stderr.data)

    def _oom_killed(self) -> bool:
        """Whether the memory limit killed a process of this sandbox (remembered once
        seen: the group's counters go with the group)."""
        if not self._oom and self.cgroup is not None and self._exit is None:
            self._oom = self.cgroup.oom_kills() > 0
        return self._oom

    def close(self) -> SandboxExit:
        """SIGKILL the whole sandbox and collect its output. Idempotent."""
        if self._exit is not None:
            return self._exit
        reason = None
        if self.proc.poll() is None:
            self._killed = True
            reason = "killed on close"
            # Kill the pid namespace's init first: the kernel then kills every process in
            # the namespace, and bwrap exits only once its init has been fully reaped.
            if self.init_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.init_pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - kernel trouble
            self.proc.kill()
            self.proc.wait()
        if self.cgroup is not None:  # everything that ever joined the group, then the group
            self.cgroup.kill()
            if self._oom_killed() and reason == "killed on close":
                reason = "killed on close after the memory limit killed a process"
            try:
                self.cgroup.remove()
            except CgroupError as exc:  # left for the stale sweep at the next start
                log.warning("sandbox cgroup %s not removed: %s", self.cgroup.name, exc)
        if self.unique_uid:
            _kill_uid(self.uid)  # belt and braces: nothing of this sandbox's uid survives
        self._sock.close()
        self._stdout.join(2)
        self._stderr.join(2)
        release_uid(self.uid)
        code = self.proc.returncode
        if reason is None:
            reason = self._describe(code)
        self._exit = SandboxExit(
            returncode=code,
            stdout=bytes(self._stdout.data),
            stderr=bytes(self._stderr.data),
            stdout_dropped=self._stdout.dropped,
            stderr_dropped=self._stderr.dropped,
            reason=reason,
        )
        return self._exit

    def __enter__(self) -> BubblewrapRunning:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _kill_uid(uid: int, timeout: float = 5.0) -> None:
    """SIGKILL every process running as ``uid`` until none is left (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = _pids_of_uid(uid)
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def _pids_of_uid(uid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and _state(entry.name) != "Z":
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def _state(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return "?"


STDERR_TAIL_LINES = 8
STDERR_TAIL_BYTES = 1200


def _describe_code(code: int | None, stderr: bytearray) -> str | None:
    if code is None:
        return None
    if code == 0:
        return "exited"
    # bwrap reports a signalled child as 128 + signal number.
    sig = -code if code < 0 else code - 128 if code > 128 else None
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = {
            "SIGXCPU": "CPU time limit",
            "SIGKILL": "killed (CPU time or memory limit)",
            "SIGXFSZ": "file size limit",
            "SIGSEGV": "segmentation fault",
        }.get(name, "")
        return f"terminated by {name}" + (f": {hint}" if hint else "")
    # the last lines the agent wrote: what a miner needs to see why it died
    tail = bytes(stderr[-STDERR_TAIL_BYTES:]).decode("utf-8", "replace").strip().splitlines()
    tail = tail[-STDERR_TAIL_LINES:]
    return f"exited with code {code}" + (": stderr ends\n" + "\n".join(tail) if tail else "")
