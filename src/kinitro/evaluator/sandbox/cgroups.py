"""cgroup limits per sandbox: memory (shared memory, memfd and tmpfs included; no swap),
pids, a CPU quota and a cpuset, on cgroup v2 where the host has it and v1 where it has that.

rlimits alone leave holes an agent walks through: ``RLIMIT_AS`` does not count memory in a
memfd or a tmpfs, and is per process (four children of 300 MiB each under a 512 MiB
limit); ``sched_setaffinity`` pinning can be undone; nothing bounds CPU *rate*. A cgroup
counts every page the sandbox faults in, whoever maps it, and the kernel enforces the
quota and the cpuset whatever the agent does.

Layout (one group per sandbox, named ``sbx-<owner pid>-<owner start time>-<n>``)::

    v1   <hierarchy of each controller>/kinitro/sbx-…      memory, pids, cpu, cpuset
    v2   <delegated cgroup>/kinitro-sandboxes/sbx-…         (the evaluator's processes move
         <delegated cgroup>/kinitro-evaluator               to this leaf: v2 forbids
                                                            processes in a group with children)

The delegated cgroup on v2 is the evaluator's own (a systemd unit with ``Delegate=yes``,
see ``docs/guides/evaluator-operator.md``), or the root of a cgroup namespace.

A process joins its group before ``bwrap`` runs: the sandbox command starts with a tiny
``sh`` that writes its own pid into each group's ``cgroup.procs`` and then ``exec``\\ s
bwrap, so nothing of the sandbox ever runs outside it. On close every process in the group
is killed and the group removed; groups whose owner process is gone (an evaluator or a
rollout worker that crashed) are *stale* and :func:`remove_stale` clears them at startup.

Drivers (:mod:`.cgroup_v1`, :mod:`.cgroup_v2`) take their filesystem root as a parameter,
so their logic is tested against a fake cgroupfs tree as well as the real one.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kinitro.evaluator.sandbox.base import SandboxError

CPU_PERIOD_US = 100_000
_counter = itertools.count()
_counter_lock = threading.Lock()


class CgroupError(SandboxError):
    """A cgroup could not be created, configured or removed (the message names the file)."""


@dataclass(frozen=True, slots=True)
class CgroupLimits:
    memory_bytes: int
    """Memory of the whole group, page cache, shared memory, memfd and tmpfs included."""
    max_pids: int
    """Processes and threads of the whole group."""
    cpus: float
    """CPU quota in cores (``cpus × period`` per period)."""
    cpuset: tuple[int, ...]
    """Cores the group may run on (the rollout worker's own core)."""


class SandboxCgroup(Protocol):
    """One sandbox's group (in every hierarchy that carries its controllers)."""

    name: str

    @property
    def procs_files(self) -> list[Path]:
        """The ``cgroup.procs`` files a process writes its pid into to join."""
        ...

    def pids(self) -> list[int]: ...

    def kill(self) -> None:
        """SIGKILL every process of the group until none is left (bounded wait)."""
        ...

    def remove(self) -> None:
        """Remove the group's directories (after :meth:`kill`). Idempotent."""
        ...

    def oom_kills(self) -> int:
        """How many processes the memory limit killed."""
        ...

    def throttled(self) -> int:
        """Periods in which the CPU quota throttled the group."""
        ...


class CgroupDriver(Protocol):
    """Creates sandbox groups on one cgroup version."""

    version: int

    def describe(self) -> str: ...

    def prepare(self) -> None:
        """Create the parent group(s), enable the controllers (idempotent)."""
        ...

    def create(self, name: str, limits: CgroupLimits) -> SandboxCgroup: ...

    def groups(self) -> Sequence[SandboxCgroup]:
        """Every sandbox group under the parent (any owner)."""
        ...


# --------------------------------------------------------------------------- names


def new_name() -> str:
    """``sbx-<pid>-<start time>-<n>``: owner identity survives pid reuse."""
    with _counter_lock:
        n = next(_counter)
    return f"sbx-{os.getpid()}-{_start_time(os.getpid())}-{n}"


def owner_alive(name: str) -> bool:
    """Whether the process that created group ``name`` still runs (same pid, same start)."""
    parts = name.split("-")
    if len(parts) != 4 or parts[0] != "sbx" or not parts[1].isdigit():
        return True  # not one of ours: never touch it
    return _start_time(int(parts[1])) == parts[2]


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "gone"


def remove_stale(driver: CgroupDriver) -> list[str]:
    """Kill and remove the groups whose owner is gone; return their names."""
    removed = []
    for group in driver.groups():
        if not owner_alive(group.name):
            group.kill()
            group.remove()
            removed.append(group.name)
    return removed


# --------------------------------------------------------------------------- files


def write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise CgroupError(f"cannot write {value!r} to {path}: {exc.strerror or exc}") from None


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise CgroupError(f"cannot read {path}: {exc.strerror or exc}") from None


def make_dir(path: Path) -> None:
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise CgroupError(f"cannot create cgroup {path}: {exc.strerror or exc}") from None


def read_pids(procs: Path) -> list[int]:
    try:
        return [int(x) for x in procs.read_text().split()]
    except (OSError, ValueError):
        return []


def kill_pids(procs: Path, timeout: float = 5.0) -> None:
    """SIGKILL the pids listed in ``procs`` until it is empty (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while (pids := read_pids(procs)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def remove_dirs(dirs: Iterable[Path], timeout: float = 5.0) -> None:
    """rmdir each group directory, waiting out ``EBUSY`` while killed tasks are reaped."""
    for d in dirs:
        deadline = time.monotonic() + timeout
        while True:
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove cgroup {d}: {exc.strerror}") from None
                time.sleep(0.01)


def counter(path: Path, key: str) -> int:
    """The value of ``key`` in a flat-keyed cgroup file (``memory.events``, ``cpu.stat``)."""
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except (OSError, ValueError):
        pass
    return 0


def cpuset_text(cores: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(set(cores)))


# --------------------------------------------------------------------------- detection


def mounts(mountinfo: str) -> list[tuple[str, str, set[str]]]:
    """``(mount point, fs type, super options)`` of every cgroup mount in ``mountinfo``."""
    out = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
            continue
        out.append((fields[4], rfields[0], set(rfields[2].split(","))))
    return out


def detect(mountinfo: str | None = None, self_cgroup: str | None = None) -> CgroupDriver | None:
    """The driver for this host: v2 when its unified hierarchy carries the memory
    controller, else v1 when memory, pids, cpu and cpuset hierarchies are mounted; None
    when neither (then the sandbox runs with rlimits only, if allowed)."""
    from kinitro.evaluator.sandbox.cgroup_v1 import V1Driver  # noqa: PLC0415 - cycle: the drivers build on this module
    from kinitro.evaluator.sandbox.cgroup_v2 import V2Driver  # noqa: PLC0415 - cycle: the drivers build on this module

    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    if self_cgroup is None:
        self_cgroup = Path("/proc/self/cgroup").read_text()
    found = mounts(mountinfo)
    own: dict[str, str] = {}
    for line in self_cgroup.splitlines():
        _, names, path = line.split(":", 2)
        own[names] = path
    for point, kind, _ in found:
        if kind == "cgroup2":
            root = Path(point)
            controllers = set(read_or_empty(root / "cgroup.controllers").split())
            if {"memory", "pids", "cpu", "cpuset"} <= controllers and "" in own:
                return V2Driver(root, own[""])
    v1: dict[str, Path] = {}
    for point, kind, options in found:
        if kind == "cgroup":
            for c in ("memory", "pids", "cpu", "cpuset"):
                if c in options:
                    v1.setdefault(c, Path(point))
    if len(v1) == 4:
        return V1Driver(v1)
    return None


def detect_quietly() -> CgroupDriver | None:
    """:func:`detect`, None when the host's cgroup files cannot be read."""
    try:
        return detect()
    except (OSError, ValueError, CgroupError):
        return None


def read_or_empty(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
