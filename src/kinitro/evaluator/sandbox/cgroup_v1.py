"""cgroup v1 driver: one hierarchy per controller (memory, pids, cpu, cpuset).

Sandbox groups live at ``<hierarchy>/kinitro/<name>`` in each. Memory is
``memory.limit_in_bytes`` plus ``memory.memsw.limit_in_bytes`` at the same value (memory +
swap: no swap beyond the limit; hosts without swap accounting get ``memory.swappiness = 0``
instead); v1 cpusets start empty, so the parent and each group copy ``cpuset.mems`` from
above before they can hold a task. Needs root (v1 has no safe delegation).
"""

from __future__ import annotations

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
    read,
    read_pids,
    remove_dirs,
    write,
)

PARENT = "kinitro"
CONTROLLERS = ("memory", "pids", "cpu", "cpuset")


@dataclass
class V1Group:
    name: str
    dirs: dict[str, Path]
    """controller → this group's directory in that controller's hierarchy."""
    _removed: bool = field(default=False, repr=False)

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in _unique(self.dirs.values())]

    def pids(self) -> list[int]:
        return read_pids(self.dirs["memory"] / "cgroup.procs")

    def kill(self) -> None:
        for d in _unique(self.dirs.values()):
            kill_pids(d / "cgroup.procs")

    def remove(self) -> None:
        if not self._removed:
            remove_dirs(_unique(self.dirs.values()))
            self._removed = True

    def oom_kills(self) -> int:
        return counter(self.dirs["memory"] / "memory.oom_control", "oom_kill")

    def throttled(self) -> int:
        return counter(self.dirs["cpu"] / "cpu.stat", "nr_throttled")


class V1Driver:
    version = 1

    def __init__(self, hierarchies: dict[str, Path], parent: str = PARENT) -> None:
        missing = [c for c in CONTROLLERS if c not in hierarchies]
        if missing:
            raise CgroupError(f"cgroup v1 hierarchies missing for {', '.join(missing)}")
        self.hierarchies = dict(hierarchies)
        self.parents = {c: Path(p) / parent for c, p in hierarchies.items()}

    def describe(self) -> str:
        return "cgroup v1 (" + ", ".join(f"{c} at {p}" for c, p in self.parents.items()) + ")"

    def prepare(self) -> None:
        for d in _unique(self.parents.values()):
            make_dir(d)
        cpuset = self.parents["cpuset"]
        root = self.hierarchies["cpuset"]
        for key in ("cpuset.cpus", "cpuset.mems"):
            if not read(cpuset / key).strip():
                write(cpuset / key, read(Path(root) / key).strip())

    def create(self, name: str, limits: CgroupLimits) -> V1Group:
        self.prepare()
        group = V1Group(name, {c: p / name for c, p in self.parents.items()})
        try:
            for d in _unique(group.dirs.values()):
                make_dir(d)
            mem = group.dirs["memory"]
            write(mem / "memory.limit_in_bytes", str(limits.memory_bytes))
            if (mem / "memory.memsw.limit_in_bytes").exists():
                write(mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
            else:
                write(mem / "memory.swappiness", "0")
            write(group.dirs["pids"] / "pids.max", str(limits.max_pids))
            cpu = group.dirs["cpu"]
            write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            write(cpu / "cpu.cfs_quota_us", str(max(1000, int(limits.cpus * CPU_PERIOD_US))))
            cs = group.dirs["cpuset"]
            write(cs / "cpuset.mems", read(self.parents["cpuset"] / "cpuset.mems").strip())
            write(cs / "cpuset.cpus", cpuset_text(limits.cpuset))
        except CgroupError:
            group.remove()
            raise
        return group

    def groups(self) -> list[V1Group]:
        names: set[str] = set()
        for p in self.parents.values():
            if p.is_dir():
                names.update(
                    d.name for d in p.iterdir() if d.is_dir() and d.name.startswith("sbx-")
                )
        return [
            V1Group(n, {c: p / n for c, p in self.parents.items() if (p / n).is_dir()})
            for n in sorted(names)
        ]


def _unique(paths: object) -> list[Path]:
    out: list[Path] = []
    for p in paths:  # type: ignore[attr-defined]
        if p not in out:
            out.append(p)
    return out
