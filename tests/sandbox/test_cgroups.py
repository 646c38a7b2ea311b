"""cgroup drivers: v1 on this host's real hierarchies, v2 both on the real unified hierarchy
(processes: join, kill, remove, stale sweep — it carries no controllers here) and against a
fake cgroupfs tree for what this host cannot run (delegation, controllers, limit files)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from kinitro.evaluator.sandbox import BubblewrapSandbox, SandboxUnavailable
from kinitro.evaluator.sandbox.bubblewrap import _JOIN_CGROUP
from kinitro.evaluator.sandbox.cgroup_v1 import V1Driver
from kinitro.evaluator.sandbox.cgroup_v2 import LEAF, PARENT, V2Driver
from kinitro.evaluator.sandbox.cgroups import (
    CgroupLimits,
    detect,
    mounts,
    new_name,
    owner_alive,
    remove_stale,
)
from kinitro.evaluator.sandbox.host import SandboxHostError, prepare_host

from .conftest import TIGHT_LIMITS, BundleFactory

LIMITS = CgroupLimits(memory_bytes=256 << 20, max_pids=32, cpus=0.5, cpuset=(0,))
HOST = detect()
needs_v1 = pytest.mark.skipif(
    HOST is None or HOST.version != 1, reason="this test needs this host's cgroup v1"
)
UNIFIED = next(
    (
        Path(p)
        for p, kind, _ in mounts(Path("/proc/self/mountinfo").read_text())
        if kind == "cgroup2"
    ),
    None,
)


def join(group_procs: list[Path], *argv: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` inside the group(s) exactly as the sandbox does (the join shell)."""
    return subprocess.Popen(
        ["/bin/sh", "-c", _JOIN_CGROUP, "sh", *map(str, group_procs), "--", *argv]
    )


def dead_owner_name() -> str:
    """A group name whose owner process no longer exists."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"sbx-{proc.pid}-1-0"


# --------------------------------------------------------------------------- names


def test_names_identify_a_live_owner() -> None:
    name = new_name()
    assert name.startswith(f"sbx-{os.getpid()}-") and owner_alive(name)
    assert not owner_alive(dead_owner_name())
    assert not owner_alive(f"sbx-{os.getpid()}-1-0")  # same pid, other start time: reused
    assert owner_alive("someone-elses-group")  # never ours to remove


def test_detection_from_mountinfo(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    v2 = f"30 23 0:27 / {tmp_path} rw - cgroup2 cgroup2 rw,nsdelegate\n"
    driver = detect(v2, "0::/system.slice/kinitro.service\n")
    assert driver is not None and driver.version == 2
    assert driver.describe().endswith(f"{tmp_path}/system.slice/kinitro.service/{PARENT})")
    v1 = "".join(
        f"3{i} 31 0:2{i} / /sys/fs/cgroup/{c} rw - cgroup cgroup rw,{c}\n"
        for i, c in enumerate(["memory", "pids", "cpu,cpuacct", "cpuset"])
    )
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")  # a hybrid host, like this one
    driver = detect(v1 + v2, "4:memory:/\n0::/\n")
    assert driver is not None and driver.version == 1
    assert detect("", "0::/\n") is None


# --------------------------------------------------------------------------- v1 (real)


@needs_v1
def test_v1_group_limits_kill_and_removal() -> None:
    assert isinstance(HOST, V1Driver)
    group = HOST.create(new_name(), LIMITS)
    try:
        mem = group.dirs["memory"]
        assert int((mem / "memory.limit_in_bytes").read_text()) == 256 << 20
        assert int((mem / "memory.memsw.limit_in_bytes").read_text()) == 256 << 20  # no swap
        assert (group.dirs["pids"] / "pids.max").read_text().strip() == "32"
        assert (group.dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (group.dirs["cpu"] / "cpu.cfs_period_us").read_text().strip() == "100000"
        assert (group.dirs["cpuset"] / "cpuset.cpus").read_text().strip() == "0"
        proc = join(group.procs_files, "sleep", "60")
        deadline = time.monotonic() + 10
        while proc.pid not in group.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.pid in group.pids()
        group.kill()
        assert proc.wait(5) == -9 and group.pids() == []
    finally:
        group.kill()
        group.remove()
    assert not any(d.exists() for d in group.dirs.values())


@needs_v1
def test_v1_stale_groups_are_removed_and_live_ones_kept() -> None:
    assert isinstance(HOST, V1Driver)
    stale = HOST.create(dead_owner_name(), LIMITS)
    live = HOST.create(new_name(), LIMITS)
    orphan = join(stale.procs_files, "sleep", "60")  # what a crashed evaluator leaves
    try:
        time.sleep(0.2)
        removed = remove_stale(HOST)
        # the stale group is gone, by this sweep or by another sandbox host's on this
        # machine (every new sandbox host sweeps: a test in a parallel process may be first)
        assert live.name not in removed
        assert orphan.wait(5) == -9
        assert not any(d.exists() for d in stale.dirs.values())
        assert all(d.exists() for d in live.dirs.values())
    finally:
        for g in (stale, live):
            g.kill()
            g.remove()


@needs_v1
def test_a_new_sandbox_host_clears_the_groups_of_a_killed_worker() -> None:
    """A rollout worker killed with its sandboxes up (a cancelled job's worker that did not
    close within its grace) leaves their groups: the next worker's sandbox clears them."""
    assert isinstance(HOST, V1Driver)
    stale = HOST.create(dead_owner_name(), LIMITS)
    orphan = join(stale.procs_files, "sleep", "60")
    try:
        deadline = time.monotonic() + 10
        while orphan.pid not in stale.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        BubblewrapSandbox(cgroups=HOST)
        assert orphan.wait(5) == -9
        assert not any(d.exists() for d in stale.dirs.values())
    finally:
        stale.kill()
        stale.remove()


@needs_v1
def test_sandbox_runs_in_its_group_on_the_workers_core(make_bundle: BundleFactory) -> None:
    core = sorted(os.sched_getaffinity(0))[-1]
    sandbox = BubblewrapSandbox(TIGHT_LIMITS)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})  # a pinned rollout worker
    try:
        with sandbox.start(make_bundle()) as running:
            assert running.cgroup is not None
            pids = running.cgroup.pids()
            assert running.pid in pids and len(pids) >= 3  # bwrap, its init, the runtime
            cpuset = running.cgroup.dirs["cpuset"] / "cpuset.cpus"  # type: ignore[attr-defined]
            assert cpuset.read_text().strip() == str(core)
        dirs = running.cgroup.dirs.values()  # type: ignore[attr-defined]
        assert not any(d.exists() for d in dirs)
    finally:
        os.sched_setaffinity(0, before)


def test_no_cgroup_is_refused_unless_allowed(make_bundle: BundleFactory) -> None:
    with pytest.raises(SandboxUnavailable, match="sandbox_allow_no_cgroup"):
        BubblewrapSandbox(TIGHT_LIMITS, cgroups=None).start(make_bundle())
    with BubblewrapSandbox(TIGHT_LIMITS, cgroups=None, allow_no_cgroup=True).start(
        make_bundle(name="allowed")
    ) as running:
        assert running.cgroup is None and running.alive()
    with pytest.raises(SandboxHostError, match="no cgroup"):
        prepare_host("bubblewrap", cgroups=None)
    report = prepare_host("bubblewrap", cgroups=None, allow_no_cgroup=True)
    assert any("WITHOUT cgroup LIMITS" in w for w in report.warnings)


# --------------------------------------------------------------------------- v2 (real)


@pytest.mark.skipif(UNIFIED is None, reason="no cgroup2 mount on this host")
def test_v2_processes_on_the_real_unified_hierarchy() -> None:
    """Join, cgroup.kill, removal and the stale sweep on the kernel's own v2 (this host's
    unified hierarchy has no controllers, so no limits are written here)."""
    assert UNIFIED is not None
    own = Path("/proc/self/cgroup").read_text().split("0::", 1)[1].split("\n")[0]
    driver = V2Driver(UNIFIED, own, controllers=())
    stale = driver.create(dead_owner_name(), LIMITS)
    live = driver.create(new_name(), LIMITS)
    try:
        orphan = join(stale.procs_files, "sleep", "60")
        proc = join(live.procs_files, "sleep", "60")
        deadline = time.monotonic() + 10
        while proc.pid not in live.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.pid in live.pids()
        assert (
            f"::/{live.path.relative_to(UNIFIED)}" in Path(f"/proc/{proc.pid}/cgroup").read_text()
        )
        assert stale.name in remove_stale(driver) and orphan.wait(5) == -9
        live.kill()  # cgroup.kill
        assert proc.wait(5) == -9
        live.remove()
        assert not live.path.exists() and not stale.path.exists()
    finally:
        for g in (stale, live):
            g.kill()
            g.remove()


# --------------------------------------------------------------------------- v2 (fake tree)


def fake_v2(tmp_path: Path, own: str) -> Path:
    """A cgroupfs tree as a v2 host with a delegated ``own`` group shows it."""
    root = tmp_path / "cgroup"
    (root / own.strip("/")).mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / own.strip("/") / "cgroup.procs").write_text("4242\n4243\n")
    (root / own.strip("/") / "cgroup.subtree_control").write_text("")
    return root


def test_v2_delegation_on_a_fake_tree(tmp_path: Path) -> None:
    own = "/system.slice/kinitro-evaluator.service"
    root = fake_v2(tmp_path, own)
    unit = root / own.strip("/")
    driver = V2Driver(root, own)
    name = "sbx-1-2-3"
    (unit / PARENT / name).mkdir(parents=True)
    (unit / PARENT / name / "memory.swap.max").write_text("max\n")  # the kernel's file
    group = driver.create(name, LIMITS)
    # The unit's processes moved to a leaf, then the controllers went to the subtree.
    assert (unit / LEAF / "cgroup.procs").read_text() == "4243"  # one write per pid
    assert (unit / "cgroup.subtree_control").read_text() == "+memory +pids +cpu +cpuset"
    assert (unit / PARENT / "cgroup.subtree_control").read_text() == "+memory +pids +cpu +cpuset"
    files = {f.name: f.read_text() for f in group.path.iterdir()}
    assert files == {
        "memory.max": str(256 << 20),
        "memory.swap.max": "0",
        "memory.oom.group": "1",
        "pids.max": "32",
        "cpu.max": "50000 100000",
        "cpuset.cpus": "0",
    }
    assert group.procs_files == [group.path / "cgroup.procs"]
    # A rollout worker started later lives in the leaf: same delegation root, same parent.
    assert V2Driver(root, f"{own}/{LEAF}").parent == driver.parent


def test_v2_counters_on_a_fake_tree(tmp_path: Path) -> None:
    root = fake_v2(tmp_path, "/")
    group = V2Driver(root, "/").create("sbx-1-2-3", LIMITS)
    (group.path / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n")
    (group.path / "cpu.stat").write_text("usage_usec 10\nnr_periods 5\nnr_throttled 3\n")
    assert group.oom_kills() == 1 and group.throttled() == 3
    assert not (root / LEAF).exists()  # a namespace root may hold processes: nothing moved
