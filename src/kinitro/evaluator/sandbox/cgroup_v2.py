"""cgroup v2 driver: one unified hierarchy, a delegated subtree.

The evaluator's own cgroup is the delegation root (a systemd unit with ``Delegate=yes``,
or the root of a container's cgroup namespace). v2 lets a group with children hold no
processes, so :meth:`V2Driver.prepare` moves the evaluator's processes into the leaf
``kinitro-evaluator`` first (rollout workers it starts later are born there), then
enables ``memory pids cpu cpuset`` for ``kinitro-sandboxes``, the parent of the sandbox
groups. Per group: ``memory.max`` with ``memory.swap.max = 0`` and ``memory.oom.group = 1``
(an OOM kills the whole sandbox), ``pids.max``, ``cpu.max``, ``cpuset.cpus``; closing
writes ``cgroup.kill``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from kinitro.evaluator.sandbox.cgroups import (
    CPU_PERIOD_US,
    CgroupError,
    CgroupLimits,
    counter,
    cpuset_text,
    kill_pids,
    make_dir,
    read_or_empty,
    read_pids,
    remove_dirs,
    write,
)

LEAF = "kinitro-evaluator"
PARENT = "kinitro-sandboxes"
CONTROLLERS = ("memory", "pids", "cpu", "cpuset")


@dataclass
class V2Group:
    name: str
    path: Path
    _removed: bool = field(default=False, repr=False)

    @property
    def procs_files(self) -> list[Path]:
        return [self.path / "cgroup.procs"]

    def pids(self) -> list[int]:
        return read_pids(self.path / "cgroup.procs")

    def kill(self) -> None:
        if (self.path / "cgroup.kill").exists():
            # Already empty or gone: fine; anything left is killed one by one below.
            with contextlib.suppress(CgroupError):
                write(self.path / "cgroup.kill", "1")
        kill_pids(self.path / "cgroup.procs")

    def remove(self) -> None:
        if not self._removed:
            remove_dirs([self.path])
            self._removed = True

    def oom_kills(self) -> int:
        return counter(self.path / "memory.events", "oom_kill")

    def throttled(self) -> int:
        return counter(self.path / "cpu.stat", "nr_throttled")


class V2Driver:
    version = 2

    def __init__(self, root: Path, own: str, controllers: tuple[str, ...] = CONTROLLERS) -> None:
        """``root``: the cgroup2 mount; ``own``: this process's cgroup path (from
        ``/proc/self/cgroup``); ``controllers``: which limits to apply (all in production;
        tests on a hierarchy without controllers pass none)."""
        self.root = Path(root)
        self.controllers = controllers
        here = self.root / own.strip("/")
        self.delegated = here.parent if here.name == LEAF else here
        self.parent = self.delegated / PARENT

    def describe(self) -> str:
        return f"cgroup v2 (sandboxes under {self.parent})"

    def prepare(self) -> None:
        d = self.delegated
        if d != self.root:
            pids = read_pids(d / "cgroup.procs")
            if pids:  # no processes in a group with children (v2): move them to a leaf
                make_dir(d / LEAF)
                for pid in pids:
                    try:
                        write(d / LEAF / "cgroup.procs", str(pid))
                    except CgroupError:
                        if _alive(pid):
                            raise
        self._enable(d)
        make_dir(self.parent)
        self._enable(self.parent)

    def _enable(self, group: Path) -> None:
        if not self.controllers:
            return
        enabled = set(read_or_empty(group / "cgroup.subtree_control").split())
        wanted = [c for c in self.controllers if c not in enabled]
        if wanted:
            write(group / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))

    def create(self, name: str, limits: CgroupLimits) -> V2Group:
        self.prepare()
        group = V2Group(name, self.parent / name)
        make_dir(group.path)
        try:
            c, p = self.controllers, group.path
            if "memory" in c:
                write(p / "memory.max", str(limits.memory_bytes))
                if (p / "memory.swap.max").exists():
                    write(p / "memory.swap.max", "0")
                write(p / "memory.oom.group", "1")
            if "pids" in c:
                write(p / "pids.max", str(limits.max_pids))
            if "cpu" in c:
                quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
                write(p / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            if "cpuset" in c:
                write(p / "cpuset.cpus", cpuset_text(limits.cpuset))
        except CgroupError:
            group.remove()
            raise
        return group

    def groups(self) -> list[V2Group]:
        if not self.parent.is_dir():
            return []
        return [
            V2Group(d.name, d)
            for d in sorted(self.parent.iterdir())
            if d.is_dir() and d.name.startswith("sbx-")
        ]


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()
