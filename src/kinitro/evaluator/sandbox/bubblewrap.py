"""Bubblewrap sandbox: the default, local agent sandbox.

What the agent runtime sees (``bwrap`` mount namespace built from an empty root)::

    /usr, /bin, /lib*, /sbin        host system, read-only
    /etc/ld.so.cache …              the dynamic loader's files only (no passwd, no hosts)
    <agent env>, <its interpreter>  the agent environment (kinitro-agent, numpy, msgpack, a
                                    profile's extras) and the base interpreter, read-only;
                                    every other package directory (site-/dist-packages)
                                    is covered by an empty read-only tmpfs
    /bundle                         the agent bundle, read-only
    /tmp                            private tmpfs, size-capped (also $HOME)
    /proc, /dev                     fresh procfs (own pid namespace) and a minimal /dev
    everything else                 absent; the root itself is remounted read-only

Namespaces: pid, net (only a loopback device: no route anywhere), ipc, uts, cgroup. The
RPC connection is one end of a ``socketpair`` passed as an inherited file descriptor, so
the sandbox needs no writable host directory at all (tighter than binding a socket
directory). The environment is cleared (no secrets; ``HOME=/tmp``), ``--die-with-parent``
ties the sandbox to the evaluator. Closing SIGKILLs the pid namespace's init (its host pid
comes from ``bwrap --info-fd``): the kernel then kills every process in the namespace,
even ``setsid`` ones, and bwrap exits once the init is reaped; then bwrap's process group
is killed and, when the sandbox has its own uid, any process left with that uid.
stdout/stderr are drained by threads and kept up to ``output_bytes`` each.

Untested here: the non-root (user namespace) mode below, since this machine's Python
lives under ``/root`` which a non-root evaluator could not read anyway.

Limits (:class:`SandboxLimits`) are rlimits set by ``prlimit`` *inside* the sandbox:
CPU time, address space, processes, open files, file size, no core files. ``RLIMIT_NPROC``
is not enforced for uid 0, so when the evaluator runs as root (this container, most CI)
bwrap runs privileged — no user namespace — and ``setpriv`` drops the runtime to a
per-sandbox unprivileged uid (random in ``[100000, 160000)``), clears groups, empties the
capability bounding set and sets ``no_new_privs`` before Python starts. All bind mounts
are ``nosuid``. As a consequence the bundle must be readable by "other" (``0644``/``0755``):
:meth:`BubblewrapSandbox.start` checks it. When the evaluator is not root, bwrap uses an
unprivileged user namespace instead (uid 65534 inside); ``RLIMIT_NPROC`` then counts all
processes of the evaluator's user.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path
from typing import Literal

from kinitro.evaluator.sandbox.agent_env import AGENT_ENV_MOUNT, AgentEnvironment, profile_of
from kinitro.evaluator.sandbox.base import (
    RUNTIME_MODULE,
    SandboxLimits,
    SandboxStartError,
    SandboxUnavailable,
)
from kinitro.evaluator.sandbox.bubblewrap_running import (
    BubblewrapRunning,
    allocate_uid,
    release_uid,
)
from kinitro.evaluator.sandbox.cgroups import (
    CgroupDriver,
    CgroupError,
    CgroupLimits,
    SandboxCgroup,
    detect_quietly,
    new_name,
    remove_stale,
)
from kinitro.evaluator.sandbox.seccomp import program as seccomp_program
from kinitro.evaluator.sandbox.seccomp import program_fd

log = logging.getLogger(__name__)

BUNDLE_MOUNT = "/bundle"
SANDBOX_TMP = "/tmp"  # noqa: S108 - the sandbox's private tmpfs, not the host's /tmp
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_LOADER_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives")
_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _bind_with_parents(
    a: list[str], path: Path, made: set[Path], source: Path | None = None
) -> None:
    """``--ro-bind source path`` (default: ``path`` itself), creating its parents 0755
    first (bwrap would make them 0700, unreadable for the sandbox uid)."""
    for parent in reversed(path.parents):
        if parent != Path("/") and parent not in made:
            made.add(parent)
            a += ["--perms", "0755", "--dir", str(parent)]
    a += ["--ro-bind", str(source or path), str(path)]


def _outside_system_dirs(paths: list[Path]) -> list[Path]:
    """``paths`` without those the system directories' binds already cover, and without
    any path below another one of the list."""
    out: list[Path] = []
    for p in paths:
        if any(p.is_relative_to(d) for d in _SYSTEM_DIRS):
            continue
        if not any(p.is_relative_to(o) for o in out):
            out = [o for o in out if not o.is_relative_to(p)] + [p]
    return out


def check_bundle_readable(bundle_dir: Path) -> None:
    """Raise :class:`SandboxStartError` unless "other" can read the whole bundle."""
    for root, dirs, files in os.walk(bundle_dir):
        for name in [*dirs, *files, "."]:
            p = Path(root) / name
            mode = p.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
            if mode & need != need:
                raise SandboxStartError(
                    f"bundle path {p} is not readable by other users (mode {mode & 0o777:o}); "
                    "the sandbox runs the agent as an unprivileged uid — extract bundles "
                    "world-readable (0644 files / 0755 directories)"
                )


def _sweep(driver: CgroupDriver) -> None:
    """Remove the groups of sandbox owners that are gone. A rollout worker killed with its
    sandboxes running (a cancelled job's worker that did not close in time) leaves its
    groups behind; the next worker to start sandboxes clears them, not only the
    evaluator's next start."""
    try:
        for name in remove_stale(driver):
            log.info("removed stale sandbox cgroup %s", name)
    except (CgroupError, OSError) as exc:  # another worker sweeping at the same moment, …
        log.debug("stale sandbox cgroup sweep: %s", exc)


class BubblewrapSandbox:
    """Start agent bundles under ``bwrap``; see the module docstring for the policy."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        bwrap: str = "bwrap",
        agent_envs: Path | None = None,
        max_frame: int | None = None,
        extra_env: dict[str, str] | None = None,
        cgroups: CgroupDriver | Literal["auto"] | None = "auto",
        allow_no_cgroup: bool = False,
        require_seccomp: bool = True,
    ) -> None:
        """``cgroups``: the driver that creates each sandbox's group (``auto``: this host's
        v2 or v1 hierarchy, see :mod:`~kinitro.evaluator.sandbox.cgroups`). Without one —
        no usable hierarchy, or a group that cannot be created — :meth:`start` fails unless
        ``allow_no_cgroup``, in which case memory falls back to ``RLIMIT_AS`` (per process,
        blind to memfd and tmpfs) and there is neither a CPU quota nor a cpuset.
        ``require_seccomp``: refuse to run without the seccomp filter
        (:mod:`~kinitro.evaluator.sandbox.seccomp`) when libseccomp's binding is missing."""
        self.limits = limits or SandboxLimits()
        found = shutil.which(bwrap)
        if found is None:
            raise SandboxUnavailable(f"{bwrap!r} not found: install bubblewrap")
        for tool in ("prlimit", "setpriv"):
            if shutil.which(tool) is None:
                raise SandboxUnavailable(f"{tool!r} not found: install util-linux")
        self.bwrap = found
        self.agent_envs = agent_envs
        """Directory of the built agent environments (default: ``agent-envs`` in the
        evaluator's own environment, see :mod:`~kinitro.evaluator.sandbox.agent_env`)."""
        self.max_frame = max_frame
        self.extra_env = dict(extra_env or {})
        self.privileged = os.geteuid() == 0
        self.cgroups = detect_quietly() if cgroups == "auto" else cgroups
        if self.cgroups is not None:
            _sweep(self.cgroups)
        self.allow_no_cgroup = allow_no_cgroup
        self.seccomp: bytes | None = None
        """The compiled seccomp program bwrap applies (None: none, not required)."""
        try:
            self.seccomp = seccomp_program()
        except SandboxUnavailable:
            if require_seccomp:
                raise
            log.debug("running sandboxes without the seccomp filter (not required)")

    def environment(self, bundle_dir: Path) -> AgentEnvironment:
        """The agent environment of the profile ``bundle_dir`` asks for (checked)."""
        env = AgentEnvironment.find(profile_of(bundle_dir), self.agent_envs)
        env.check_runtime()
        return env

    def argv(
        self,
        bundle_dir: Path,
        fd: int,
        ready_fd: int,
        uid: int,
        info_fd: int | None = None,
        env: AgentEnvironment | None = None,
        cgroup: SandboxCgroup | None = None,
        seccomp_fd: int | None = None,
    ) -> list[str]:
        """bwrap's command line (exposed for inspection and tests; :meth:`start` hands
        everything after ``bwrap`` over ``--args FD``, so the sandbox's pid 1 shows none of
        it)."""
        lim = self.limits
        env = env or self.environment(bundle_dir)
        a = [self.bwrap, "--die-with-parent", "--new-session"]
        if info_fd is not None:
            a += ["--info-fd", str(info_fd)]
        if seccomp_fd is not None:
            a += ["--seccomp", str(seccomp_fd)]
        a += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        a += ["--unshare-cgroup-try", "--hostname", "agent"]
        if not self.privileged:
            a += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
            if _version(self.bwrap) >= (0, 8):  # no nested user namespace (and seccomp)
                a += ["--disable-userns"]
        for d in _SYSTEM_DIRS:
            p = Path(d)
            if p.is_symlink():
                a += ["--symlink", str(p.readlink()), d]
            elif p.is_dir():
                a += ["--ro-bind", d, d]
        for f in _LOADER_FILES:
            a += ["--ro-bind-try", f, f]
        # The private /tmp first: an interpreter or venv that lives under /tmp on the host
        # (a fresh clone in /tmp, say) is then bound on top of it instead of being hidden.
        a += ["--perms", "1777", "--size", str(lim.tmp_bytes), "--tmpfs", SANDBOX_TMP]
        made: set[Path] = set()
        for p in _outside_system_dirs([env.base_prefix]):
            _bind_with_parents(a, p, made)
        # The environment at a fixed place (as in the agent image): no host path in the
        # command line; its interpreter link resolves into the base prefix bound above.
        _bind_with_parents(a, Path(AGENT_ENV_MOUNT), made, source=env.root)
        for hidden in env.hidden_package_dirs():  # other interpreters' packages: empty
            a += ["--perms", "0555", "--size", "4096", "--tmpfs", str(hidden)]
            a += ["--remount-ro", str(hidden)]
        a += ["--ro-bind", str(bundle_dir), BUNDLE_MOUNT]
        a += ["--proc", "/proc", "--dev", "/dev"]
        a += ["--remount-ro", "/", "--chdir", SANDBOX_TMP, "--clearenv"]
        environ = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": SANDBOX_TMP,
            "TMPDIR": SANDBOX_TMP,
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **{k: "1" for k in _THREAD_ENV},
            **self.extra_env,
        }
        for k, v in environ.items():
            a += ["--setenv", k, v]
        if self.privileged:
            a += ["--cap-drop", "ALL"]
            for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
                a += ["--cap-add", cap]
        a += ["--", "prlimit"]
        a += [
            f"--cpu={lim.cpu_seconds}:{lim.cpu_seconds + 1}",
            # Memory is the cgroup's (every page, memfd and tmpfs included); without one,
            # the address space of each process is the only (weak) bound left.
            *([] if cgroup is not None else [f"--as={lim.memory_bytes}"]),
            f"--nproc={lim.max_processes}",
            f"--nofile={lim.max_open_files}",
            f"--fsize={lim.max_file_size}",
            "--core=0",
        ]
        if self.privileged:
            a += [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                "--no-new-privs",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ]
        a += [f"{AGENT_ENV_MOUNT}/bin/python", "-I", "-B", "-m", RUNTIME_MODULE]
        a += ["--bundle", BUNDLE_MOUNT]
        a += ["--fd", str(fd), "--ready-fd", str(ready_fd)]
        if self.max_frame is not None:
            a += ["--max-frame", str(self.max_frame)]
        return a

    def start(self, bundle_dir: Path) -> BubblewrapRunning:
        bundle_dir = Path(bundle_dir).resolve()
        if not bundle_dir.is_dir():
            raise SandboxStartError(f"bundle directory {bundle_dir} does not exist")
        if self.privileged:
            check_bundle_readable(bundle_dir)
        env = self.environment(bundle_dir)
        cgroup = self.create_cgroup()
        uid = allocate_uid()
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ready_r, ready_w = os.pipe()
        info_r, info_w = os.pipe()
        child_fds = [child_sock.fileno(), ready_w, info_w]
        try:
            if self.seccomp is not None:
                child_fds.append(program_fd(self.seccomp))
            argv = self.argv(
                bundle_dir, child_fds[0], ready_w, uid, info_w, env, cgroup,
                child_fds[3] if self.seccomp is not None else None,
            )  # fmt: skip
            # Options through a memfd (bwrap --args): the sandbox's pid 1, a copy of bwrap,
            # shows only "bwrap --args N" and the command, which holds no host path.
            split = argv.index("--", 1)
            child_fds.append(args_fd(argv[1:split]))
            command = ["bwrap", "--args", str(child_fds[-1]), *argv[split:]]
            if cgroup is not None:  # join the sandbox's cgroup first, then become bwrap
                join = ["sh", "-c", _JOIN_CGROUP, "sh", *map(str, cgroup.procs_files), "--"]
                command = join + command
            proc = subprocess.Popen(
                command,
                executable="/bin/sh" if cgroup is not None else self.bwrap,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=child_fds,
                start_new_session=True,
                env={"PATH": f"{Path(self.bwrap).parent}:/usr/bin:/bin"},
            )
        except OSError as exc:
            release_uid(uid)
            if cgroup is not None:
                cgroup.remove()
            parent_sock.close()
            os.close(ready_r)
            os.close(info_r)
            raise SandboxStartError(f"cannot run bwrap: {exc}") from exc
        finally:
            child_sock.close()
            for fd in child_fds[1:]:
                os.close(fd)
        running = BubblewrapRunning(
            proc, parent_sock, uid, self.limits, self.privileged, cgroup=cgroup
        )
        try:
            running.wait_ready(ready_r, info_r, self.limits.start_timeout_s)
        except BaseException:
            running.close()
            raise
        finally:
            os.close(ready_r)
            os.close(info_r)
        return running

    def cgroup_limits(self) -> CgroupLimits:
        """The group's limits: :attr:`limits`, on the cores this process may run on (a
        pinned rollout worker's own core)."""
        lim = self.limits
        cores = lim.cpuset or tuple(sorted(os.sched_getaffinity(0)))
        return CgroupLimits(lim.memory_bytes, lim.max_processes, lim.cpus, cores)

    def create_cgroup(self) -> SandboxCgroup | None:
        """A new group for one sandbox, or None when allowed to run without one."""
        if self.cgroups is None:
            if self.allow_no_cgroup:
                return None
            raise SandboxUnavailable(
                "no cgroup v2 (memory, pids, cpu, cpuset delegated) or v1 hierarchy to "
                "limit the sandbox; set sandbox_allow_no_cgroup = true to run without "
                "(weaker limits)"
            )
        try:
            return self.cgroups.create(new_name(), self.cgroup_limits())
        except CgroupError as exc:
            if self.allow_no_cgroup:
                log.debug("running the sandbox without a cgroup: %s", exc)
                return None
            raise SandboxStartError(f"cannot create the sandbox's cgroup: {exc}") from exc


def args_fd(args: list[str]) -> int:
    """A memfd holding ``args`` NUL-separated (``bwrap --args FD``)."""
    fd = os.memfd_create("kinitro-bwrap-args", 0)
    os.write(fd, b"".join(a.encode() + b"\0" for a in args))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@functools.cache
def _version(bwrap: str) -> tuple[int, ...]:
    out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, check=False)
    digits = out.stdout.split()[-1] if out.stdout.split() else ""
    try:
        return tuple(int(x) for x in digits.split("."))
    except ValueError:
        return (0,)


# Joins the cgroups named by the arguments before "--", then execs the rest (bwrap).
_JOIN_CGROUP = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
