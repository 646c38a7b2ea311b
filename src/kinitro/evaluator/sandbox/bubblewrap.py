"""Bubblewrap sandbox: the default, local agent sandbox.

What the agent runtime sees (``bwrap`` mount namespace built from an empty root)::

    /usr, /bin, /lib*, /sbin        host system, read-only
    /etc/ld.so.cache …              the dynamic loader's files only (no passwd, no hosts)
    <python prefix>, <venv>, <src>  the evaluator's Python environment, read-only
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

import contextlib
import json
import os
import random
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import kinitro
from kinitro.evaluator.sandbox.base import (
    RUNTIME_MODULE,
    AgentEndpoint,
    OutputCapture,
    SandboxExit,
    SandboxLimits,
    SandboxStartError,
    SandboxUnavailable,
)

BUNDLE_MOUNT = "/bundle"
SANDBOX_TMP = "/tmp"  # noqa: S108 - the sandbox's private tmpfs, not the host's /tmp
_UID_LOW, _UID_HIGH = 100_000, 160_000
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_LOADER_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives")
_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

_uids_in_use: set[int] = set()
_uids_lock = threading.Lock()


def _allocate_uid() -> int:
    with _uids_lock:
        while True:
            uid = random.randrange(_UID_LOW, _UID_HIGH)
            if uid not in _uids_in_use:
                _uids_in_use.add(uid)
                return uid


def _release_uid(uid: int) -> None:
    with _uids_lock:
        _uids_in_use.discard(uid)


def _python_paths() -> list[Path]:
    """Directories the runtime's interpreter needs: base prefix, venv, kinitro's sources."""
    paths = [Path(sys.base_prefix), Path(sys.prefix), Path(kinitro.__file__).parent.parent]
    exe = Path(sys.executable)
    paths.append(exe.parent)
    out: list[Path] = []
    for p in paths:
        rp = p.resolve()
        if any(rp.is_relative_to(d) for d in _SYSTEM_DIRS):
            continue
        if not any(rp.is_relative_to(o) for o in out):
            out = [o for o in out if not o.is_relative_to(rp)] + [rp]
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


class BubblewrapSandbox:
    """Start agent bundles under ``bwrap``; see the module docstring for the policy."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        bwrap: str = "bwrap",
        python: str | None = None,
        max_frame: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.limits = limits or SandboxLimits()
        found = shutil.which(bwrap)
        if found is None:
            raise SandboxUnavailable(f"{bwrap!r} not found: install bubblewrap")
        for tool in ("prlimit", "setpriv"):
            if shutil.which(tool) is None:
                raise SandboxUnavailable(f"{tool!r} not found: install util-linux")
        self.bwrap = found
        self.python = python or sys.executable
        self.max_frame = max_frame
        self.extra_env = dict(extra_env or {})
        self.privileged = os.geteuid() == 0

    def argv(
        self, bundle_dir: Path, fd: int, ready_fd: int, uid: int, info_fd: int | None = None
    ) -> list[str]:
        """The full command line (exposed for inspection and tests)."""
        lim = self.limits
        a = [self.bwrap, "--die-with-parent", "--new-session"]
        if info_fd is not None:
            a += ["--info-fd", str(info_fd)]
        a += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        a += ["--unshare-cgroup-try", "--hostname", "agent"]
        if not self.privileged:
            a += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
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
        for p in _python_paths():
            # Parents bwrap would create 0700 (unreadable for the sandbox uid): make them 0755.
            for parent in reversed(p.parents):
                if parent != Path("/") and parent not in made:
                    made.add(parent)
                    a += ["--perms", "0755", "--dir", str(parent)]
            a += ["--ro-bind", str(p), str(p)]
        a += ["--ro-bind", str(bundle_dir), BUNDLE_MOUNT]
        a += ["--proc", "/proc", "--dev", "/dev"]
        a += ["--remount-ro", "/", "--chdir", SANDBOX_TMP, "--clearenv"]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": SANDBOX_TMP,
            "TMPDIR": SANDBOX_TMP,
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **{k: "1" for k in _THREAD_ENV},
            **self.extra_env,
        }
        for k, v in env.items():
            a += ["--setenv", k, v]
        if self.privileged:
            a += ["--cap-drop", "ALL"]
            for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
                a += ["--cap-add", cap]
        a += ["--", "prlimit"]
        a += [
            f"--cpu={lim.cpu_seconds}:{lim.cpu_seconds + 1}",
            f"--as={lim.memory_bytes}",
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
        a += [self.python, "-I", "-B", "-m", RUNTIME_MODULE, "--bundle", BUNDLE_MOUNT]
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
        uid = _allocate_uid()
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ready_r, ready_w = os.pipe()
        info_r, info_w = os.pipe()
        try:
            argv = self.argv(bundle_dir, child_sock.fileno(), ready_w, uid, info_w)
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(child_sock.fileno(), ready_w, info_w),
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        except OSError as exc:
            _release_uid(uid)
            parent_sock.close()
            os.close(ready_r)
            os.close(info_r)
            raise SandboxStartError(f"cannot run bwrap: {exc}") from exc
        finally:
            child_sock.close()
            os.close(ready_w)
            os.close(info_w)
        running = BubblewrapRunning(proc, parent_sock, uid, self.limits, self.privileged)
        try:
            running.wait_ready(ready_r, info_r, self.limits.start_timeout_s)
        except BaseException:
            running.close()
            raise
        finally:
            os.close(ready_r)
            os.close(info_r)
        return running


class BubblewrapRunning:
    """A started bubblewrap sandbox (see :class:`~kinitro.evaluator.sandbox.RunningSandbox`)."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        sock: socket.socket,
        uid: int,
        limits: SandboxLimits,
        unique_uid: bool = True,
    ) -> None:
        self.proc = proc
        self.uid = uid
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
        return _describe_code(code, self._stderr.data)

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
        if self.unique_uid:
            _kill_uid(self.uid)  # belt and braces: nothing of this sandbox's uid survives
        self._sock.close()
        self._stdout.join(2)
        self._stderr.join(2)
        _release_uid(self.uid)
        code = self.proc.returncode
        if reason is None:
            reason = _describe_code(code, self._stderr.data)
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
    tail = bytes(stderr[-300:]).decode("utf-8", "replace").strip().splitlines()
    return f"exited with code {code}" + (f": {tail[-1]}" if tail else "")
