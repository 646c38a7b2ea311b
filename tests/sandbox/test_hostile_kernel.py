"""Hostile agents against the kernel: namespaces, bpf, io_uring, keys, ptrace, mounts …

Each test is one bundle that makes the raw system call (``ctypes``, x86-64 numbers) with
arguments the kernel itself would answer differently (``EINVAL``, ``EFAULT``, success):
the sandbox's seccomp filter must answer ``EPERM`` (``ENOSYS`` for ``clone3``), and the
agent reports what it got, which the evaluator sees as the agent's crash. The last tests
check what the agent can learn about the host from its own pid namespace.
"""

from __future__ import annotations

import ast
import platform

import pytest

from kinitro.evaluator.agent_client import AgentCrashed

from .conftest import BundleFactory
from .hostile import RunAgent, attack

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 syscall numbers")

SYSCALLER = """
import ctypes, errno, os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x40000000, 0x20000, 17

CALLS = {   # name: (number, args): arguments a kernel without the filter answers otherwise
    "bpf": (321, (9999, 0, 0)),                          # EINVAL: no such command
    "io_uring_setup": (425, (1, 0)),                     # EFAULT: NULL params
    "io_uring_enter": (426, (-1, 0, 0, 0, 0, 0)),        # EBADF
    "keyctl": (250, (9999, 0, 0, 0, 0)),                 # EOPNOTSUPP
    "add_key": (248, (0, 0, 0, 0, 0)),                   # EFAULT
    "perf_event_open": (298, (0, 0, -1, -1, 0)),         # EFAULT
    "userfaultfd": (323, (0xFFFF,)),                     # EINVAL
    "ptrace_traceme": (101, (0, 0, 0, 0)),               # 0: allowed to be traced
    "process_vm_readv": (310, (1, 0, 0, 0, 0, 0)),       # 0 bytes: nothing to read
    "mount": (165, (0, 0, 0, 0, 0)),                     # EFAULT
    "umount2": (166, (0, 0)),                            # EFAULT
    "pivot_root": (155, (0, 0)),                         # EFAULT
    "open_tree": (428, (-1, 0, 0)),                      # EBADF/EFAULT
    "fsopen": (430, (0, 0)),                             # EFAULT
    "setns": (308, (-1, 0)),                             # EBADF
    "kexec_load": (246, (0, 0, 0, 0)),
    "init_module": (175, (0, 0, 0)),
    "finit_module": (313, (-1, 0, 0)),
    "open_by_handle_at": (304, (-1, 0, 0)),
    "unshare_user": (272, (CLONE_NEWUSER,)),             # 0: unprivileged user namespaces
    "unshare_net": (272, (CLONE_NEWNET,)),
    "unshare_mount": (272, (CLONE_NEWNS,)),
    "clone_user": (56, (CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)),
    "clone3": (435, (0, 0)),                             # EFAULT/EINVAL
    "personality": (135, (0xFFFFFFFF,)),                 # query: always allowed otherwise
    "chroot": (161, (0,)),                               # EFAULT
}

class Agent:
    def reset(self, task):
        self.name = task.metadata["call"]

    def act(self, obs):
        nr, args = CALLS[self.name]
        ret = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
        err = ctypes.get_errno()
        if ret == 0 and nr == 56:
            os._exit(0)                                  # the clone child, if any
        status = open("/proc/self/status").read()
        filters = status.split("Seccomp_filters:")[1].split()[0]
        code = errno.errorcode.get(err, str(err)) if ret == -1 else f"returned {ret}"
        raise RuntimeError(f"{self.name}: {code}; seccomp filters {filters}")
"""

DENIED = [
    "bpf",
    "io_uring_setup",
    "io_uring_enter",
    "keyctl",
    "add_key",
    "perf_event_open",
    "userfaultfd",
    "ptrace_traceme",
    "process_vm_readv",
    "mount",
    "umount2",
    "pivot_root",
    "open_tree",
    "fsopen",
    "setns",
    "kexec_load",
    "init_module",
    "finit_module",
    "open_by_handle_at",
    "unshare_user",
    "unshare_net",
    "unshare_mount",
    "clone_user",
    "personality",
    "chroot",
]


@pytest.mark.parametrize("call", DENIED)
def test_dangerous_syscalls_are_denied(
    call: str, run_agent: RunAgent, make_bundle: BundleFactory
) -> None:
    failure, _ = attack(run_agent, make_bundle(SYSCALLER), metadata={"call": call})
    assert isinstance(failure, AgentCrashed), failure
    assert f"{call}: EPERM; seccomp filters 1" in str(failure), failure


def test_clone3_falls_back_to_the_inspectable_clone(
    run_agent: RunAgent, make_bundle: BundleFactory
) -> None:
    failure, _ = attack(run_agent, make_bundle(SYSCALLER), metadata={"call": "clone3"})
    assert "clone3: ENOSYS; seccomp filters 1" in str(failure), failure


UNSHARE_TOOL = """
import subprocess

class Agent:
    def reset(self, task): pass

    def act(self, obs):
        out = subprocess.run(["unshare", "-Ur", "id", "-u"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() == "0":
            return obs[:4].astype("float32")              # root in a new user namespace
        raise RuntimeError(f"contained: {out.returncode} {out.stderr.strip()}")
"""


def test_unshare_tool_gets_no_user_namespace(
    run_agent: RunAgent, make_bundle: BundleFactory
) -> None:
    failure, _ = attack(run_agent, make_bundle(UNSHARE_TOOL))
    assert "contained:" in str(failure) and "Operation not permitted" in str(failure), failure


PTRACE_SIBLING = """
import ctypes, os, signal, time

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206

class Agent:
    def reset(self, task): pass

    def act(self, obs):
        victim = os.fork()
        if victim == 0:
            time.sleep(30)
            os._exit(0)
        results = []
        for request in (PTRACE_ATTACH, PTRACE_SEIZE):
            ret = libc.ptrace(ctypes.c_long(request), ctypes.c_long(victim), None, None)
            results.append((ret, os.strerror(ctypes.get_errno())))
        try:
            with open(f"/proc/{victim}/mem", "rb") as f:     # the other way in
                f.seek(0x400000)
                f.read(16)
            results.append("mem read")
        except OSError as exc:
            results.append(f"mem: {exc.strerror}")
        os.kill(victim, signal.SIGKILL)
        if any(r[0] == 0 for r in results if isinstance(r, tuple)) or "mem read" in results:
            return obs[:4].astype("float32")
        raise RuntimeError(f"contained: {results}")
"""


def test_ptrace_of_a_sibling(run_agent: RunAgent, make_bundle: BundleFactory) -> None:
    failure, _ = attack(run_agent, make_bundle(PTRACE_SIBLING))
    text = str(failure)
    assert "contained:" in text and "Operation not permitted" in text, text


PID_ONE = """
import os

class Agent:
    def reset(self, task): pass

    def act(self, obs):
        seen = {}
        for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
            try:
                seen[pid] = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")[:-1]
            except OSError as exc:
                seen[pid] = [exc.strerror.encode()]
        status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
        raise RuntimeError("SEEN " + repr({k: [a.decode() for a in v] for k, v in seen.items()})
                           + " SECCOMP " + status["Seccomp"].strip())
"""


def test_pid_one_shows_no_host_path(run_agent: RunAgent, make_bundle: BundleFactory) -> None:
    failure, _ = attack(run_agent, make_bundle(PID_ONE))
    text = str(failure)
    seen = ast.literal_eval(text.rsplit("SEEN ", 1)[1].split(" SECCOMP ")[0])
    pid_one = seen["1"]
    assert pid_one[:2] == ["bwrap", "--args"], pid_one  # the options went through a memfd
    allowed = ("/opt/kinitro/agent-env/", "/bundle")
    for argv in seen.values():  # every process the agent can see
        paths = [a for a in argv if "/" in a]
        assert all(p.startswith(allowed) for p in paths), argv
    assert text.rstrip().endswith("SECCOMP 2"), text  # filter mode
