"""The sandbox port: start an agent bundle in isolation, hand back where to reach it."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

from kinitro.evaluator.errors import EvaluatorError

RUNTIME_MODULE = "kinitro_agent.runtime"
"""The agent runtime, run with the agent environment's interpreter (``python -m``)."""


class SandboxError(EvaluatorError):
    """The sandbox itself failed (an infrastructure fault, retried, never scored)."""


class SandboxStartError(SandboxError):
    """The sandbox could not be created or did not become ready before its deadline."""


class SandboxUnavailable(SandboxError):
    """This sandbox backend cannot run on this host (e.g. ``bwrap`` missing)."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Resource limits of one agent sandbox (applied per sandbox)."""

    cpu_seconds: int = 3600
    """Total CPU time of each process (RLIMIT_CPU; SIGXCPU then SIGKILL)."""
    memory_bytes: int = 4 * 1024**3
    """Memory of the whole sandbox: its cgroup's limit (page cache, shared memory, memfd
    and tmpfs included, no swap) locally, the pod's memory limit on Kubernetes. Without a
    cgroup (``allow_no_cgroup``) only the address space of each process (RLIMIT_AS)."""
    max_processes: int = 64
    """Processes and threads: the cgroup's ``pids.max`` and RLIMIT_NPROC of the sandbox
    uid locally; the pod's pid limit on Kubernetes (kubelet ``podPidsLimit``)."""
    max_open_files: int = 256
    max_file_size: int = 64 * 1024**2
    """Largest file the agent may write (RLIMIT_FSIZE)."""
    tmp_bytes: int = 256 * 1024**2
    """Size of the private /tmp (tmpfs / emptyDir)."""
    start_timeout_s: float = 20.0
    """Deadline for the sandbox to be up and the runtime listening (before miner code)."""
    output_bytes: int = 256 * 1024
    """stdout+stderr kept per stream; the rest is counted and dropped."""
    cpus: float = 1.0
    """CPU quota in cores (the cgroup's ``cpu.max`` / the pod's CPU limit)."""
    cpuset: tuple[int, ...] = ()
    """Cores the sandbox may run on (its cgroup's cpuset); empty: the cores the starting
    process may run on — a pinned rollout worker's own core."""
    gpus: int = 0
    """GPUs requested (Kubernetes only)."""


@dataclass(frozen=True)
class AgentEndpoint:
    """Where the agent runtime listens: an adopted connected socket, a Unix path or TCP."""

    sock: socket.socket | None = field(default=None, compare=False)
    unix_path: str | None = None
    host: str | None = None
    port: int | None = None
    describe_exit: Callable[[], str | None] | None = field(default=None, compare=False)
    """Best-effort text about how the sandbox ended (exit code, signal, limit hit)."""

    def open(self, timeout: float) -> socket.socket:
        """Return a connected, blocking stream socket (TCP_NODELAY for TCP)."""
        if self.sock is not None:
            return self.sock
        if self.unix_path is not None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.unix_path)
            return s
        if self.host is None or self.port is None:
            raise OSError("endpoint has neither a socket, a path nor host:port")
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s


@dataclass(frozen=True, slots=True)
class SandboxExit:
    """How a sandbox ended and what it printed (truncated to the output cap)."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    reason: str | None = None
    """e.g. ``killed on close``, ``CPU time limit``; None when it exited by itself."""


@runtime_checkable
class RunningSandbox(Protocol):
    """A started sandbox. Closing kills everything it started; closing twice is fine."""

    @property
    def endpoint(self) -> AgentEndpoint: ...

    def alive(self) -> bool: ...

    def close(self) -> SandboxExit: ...

    def __enter__(self) -> RunningSandbox: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Sandbox(Protocol):
    """Port: run an agent bundle isolated. Adapters: bubblewrap (default), Kubernetes."""

    def start(self, bundle_dir: Path) -> RunningSandbox:
        """Start the runtime on ``bundle_dir``; returns once it is ready to connect.

        Raises :class:`SandboxStartError` (infrastructure fault) on failure.
        """
        ...


def pin_to_one_core(core: int | None = None) -> int:
    """Pin the calling process to one core (default: one of its allowed cores, spread by
    pid) and return it. Call it in a rollout worker *before* ``Sandbox.start``: the
    sandboxed agent inherits the affinity, so every RPC round trip is a same-core switch
    (~10 µs) instead of a cross-core wake-up (~70 µs on a VM)."""
    allowed = sorted(os.sched_getaffinity(0))
    if core is None:
        core = allowed[os.getpid() % len(allowed)]
    elif core not in allowed:
        raise ValueError(f"core {core} is not in this process's affinity set {allowed}")
    os.sched_setaffinity(0, {core})
    return core


class OutputCapture:
    """Drain a pipe on a thread, keeping at most ``limit`` bytes (the rest is counted)."""

    def __init__(self, pipe: object, limit: int, name: str) -> None:
        self._pipe = pipe
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        read = self._pipe.read1  # type: ignore[attr-defined]
        try:
            while chunk := read(65536):
                room = self.limit - len(self.data)
                if room > 0:
                    self.data += chunk[:room]
                self.dropped += max(0, len(chunk) - max(room, 0))
        except (OSError, ValueError):
            pass

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
