"""Startup checks of the sandbox host: refuse to run jobs on a host that cannot contain them.

``kinitro evaluator run`` calls :func:`prepare_host` once before it consumes jobs (and
before Ray starts), so a host without an agent environment or without cgroups is an
operator's error at startup, not a ``sandbox_start`` fault on every episode:

* the ``base`` agent environment must be built, at the evaluator's ``kinitro-agent``
  version; other profiles that are missing only warn (bundles asking for them fail with
  ``sandbox_start`` — retried, never scored — on this host);
* the seccomp filter compiles (libseccomp's binding, ``python3-seccomp``, is installed);
* the cgroup hierarchy is prepared (on v2 the evaluator moves into its leaf), sandbox
  groups left by a crashed evaluator or rollout worker are killed and removed, and a
  probe group is created with every limit and removed. Without cgroups the host is refused
  unless ``sandbox_allow_no_cgroup``, which logs a loud warning.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kinitro.evaluator.sandbox.agent_env import AgentEnvironment
from kinitro.evaluator.sandbox.base import SandboxError, SandboxUnavailable
from kinitro.evaluator.sandbox.cgroups import (
    CgroupDriver,
    CgroupError,
    CgroupLimits,
    detect_quietly,
    new_name,
    remove_stale,
)
from kinitro.evaluator.sandbox.seccomp import program as seccomp_program
from kinitro_agent.profiles import DEFAULT_PROFILE, PROFILES

log = logging.getLogger(__name__)


class SandboxHostError(SandboxError):
    """The host cannot run agent sandboxes as configured (refused at startup)."""


@dataclass(frozen=True, slots=True)
class HostReport:
    profiles: tuple[str, ...]
    """Agent environment profiles built on this host."""
    warnings: tuple[str, ...] = field(default=())
    cgroup: str | None = None
    """The cgroup setup sandboxes use (None: none, allowed)."""


NO_CGROUP_WARNING = (
    "AGENT SANDBOXES RUN WITHOUT cgroup LIMITS (sandbox_allow_no_cgroup = true): memory is "
    "bounded per process only (RLIMIT_AS, blind to memfd and tmpfs), there is no CPU quota "
    "and no cpuset; an agent can starve this host. Do not run a validator like this"
)


def prepare_host(
    backend: str,
    *,
    agent_envs: Path | None = None,
    cgroups: CgroupDriver | Literal["auto"] | None = "auto",
    allow_no_cgroup: bool = False,
    require_seccomp: bool = True,
) -> HostReport:
    """Check the host for ``backend`` (``bubblewrap`` or ``kubernetes``); raise
    :class:`SandboxHostError` naming what is missing."""
    if backend != "bubblewrap":
        return HostReport(profiles=())  # the pods bring their own environment and limits
    try:
        base = AgentEnvironment.find(DEFAULT_PROFILE, agent_envs)
        base.check_runtime()
    except SandboxUnavailable as exc:
        raise SandboxHostError(str(exc)) from None
    built, warnings = [DEFAULT_PROFILE], []
    for profile in sorted(set(PROFILES) - {DEFAULT_PROFILE}):
        try:
            AgentEnvironment.find(profile, agent_envs).check_runtime()
            built.append(profile)
        except SandboxUnavailable as exc:
            warnings.append(f"bundles with profile {profile!r} cannot run here: {exc}")
    try:
        seccomp_program()
    except SandboxUnavailable as exc:
        if require_seccomp:
            raise SandboxHostError(str(exc)) from None
        warnings.append(f"agent sandboxes run WITHOUT the seccomp filter: {exc}")
    driver = detect_quietly() if cgroups == "auto" else cgroups
    cgroup = None
    try:
        if driver is None:
            raise CgroupError(
                "no cgroup hierarchy to limit sandboxes with: cgroup v2 with memory, pids, "
                "cpu and cpuset delegated to the evaluator, or cgroup v1 as root "
                "(see docs/guides/evaluator-operator.md)"
            )
        driver.prepare()
        for name in remove_stale(driver):
            log.info("removed stale sandbox cgroup %s", name)
        probe = CgroupLimits(64 << 20, 8, 0.5, tuple(sorted(os.sched_getaffinity(0))))
        group = driver.create(new_name(), probe)
        group.remove()
        cgroup = driver.describe()
    except CgroupError as exc:
        if not allow_no_cgroup:
            raise SandboxHostError(
                f"{exc}; refusing to run agents without cgroup limits "
                "(sandbox_allow_no_cgroup = true overrides, for development only)"
            ) from None
        warnings.append(f"{NO_CGROUP_WARNING} ({exc})")
    for w in warnings:
        log.warning("%s", w)
    return HostReport(tuple(built), tuple(warnings), cgroup)
