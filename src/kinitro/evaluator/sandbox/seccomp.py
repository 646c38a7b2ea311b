"""The sandbox's seccomp filter: the kernel's most exposed interfaces are out of reach.

A policy of *deny* rules on top of "allow" (what a policy's numpy, torch or a miner's
threads need keeps working), applied by ``bwrap --seccomp FD`` after the sandbox is set up
and before anything of the agent runs. Denied calls fail with ``EPERM`` (``clone3`` with
``ENOSYS``, so that the C library falls back to ``clone``, whose flags the filter can
inspect). Syscalls of other ABIs (i386, x32) are killed: the filter is for the native
architecture only.

=================================  ======================================================
what                               syscalls
=================================  ======================================================
new namespaces (user above all)    ``unshare``/``clone`` with any ``CLONE_NEW*`` flag,
                                   ``clone3``, ``setns``
kernel attack surface              ``bpf``, ``io_uring_*``, ``userfaultfd``,
                                   ``perf_event_open``, ``keyctl``/``add_key``/``request_key``
other processes' memory            ``ptrace``, ``process_vm_readv``/``writev``, ``kcmp``,
                                   ``pidfd_getfd``
file systems and mounts            ``mount``, ``umount2``, ``pivot_root``, ``chroot``, the new
                                   mount API (``fsopen`` … ``mount_setattr``),
                                   ``open_by_handle_at``, ``name_to_handle_at``, quotas,
                                   ``fanotify_init``, ``swapon``/``swapoff``
the machine                        ``kexec_*``, ``*_module``, ``reboot``, ``acct``, clocks,
                                   ``sethostname``, ``syslog``, ``iopl``/``ioperm``,
                                   ``personality``, ``vhangup``, obsolete calls
=================================  ======================================================

The program is compiled by libseccomp's own Python binding (Debian's ``python3-seccomp``,
maintained with libseccomp) in the distribution's interpreter
(:mod:`.seccomp_compile`), once per process, and handed to bwrap through a memfd.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

from kinitro.evaluator.sandbox.base import SandboxUnavailable

SYSTEM_PYTHON = "/usr/bin/python3"
"""The interpreter that has libseccomp's binding (``apt-get install python3-seccomp``)."""

# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
NAMESPACE_FLAGS = (
    0x20000,
    0x2000000,
    0x4000000,
    0x8000000,
    0x10000000,
    0x20000000,
    0x40000000,
    0x80,
)

DENIED = (
    # namespaces (flags of clone/unshare below)
    "setns",
    # kernel attack surface
    "bpf",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    # other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # file systems and mounts
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "quotactl",
    "quotactl_fd",
    "fanotify_init",
    "swapon",
    "swapoff",
    # the machine
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "syslog",
    "iopl",
    "ioperm",
    "personality",
    "vhangup",
    "lookup_dcookie",
    "uselib",
    "ustat",
    "sysfs",
    "nfsservctl",
)


def policy() -> dict[str, object]:
    """The policy as the compiler reads it (JSON)."""
    deny = {name: "EPERM" for name in DENIED}
    deny["clone3"] = "ENOSYS"  # flags live in a struct the filter cannot read: use clone
    return {
        "deny": deny,
        "deny_flags": {
            "unshare": {"arg": 0, "flags": list(NAMESPACE_FLAGS)},
            "clone": {"arg": 0, "flags": list(NAMESPACE_FLAGS)},
        },
    }


def oci_profile() -> dict[str, object]:
    """The same policy as an OCI / Kubernetes ``Localhost`` seccomp profile (JSON), for
    agent pods (``deploy/kubernetes/kinitro-agent-seccomp.json`` is this, written out)."""
    errnos = {"EPERM": 1, "ENOSYS": 38}
    p = policy()
    deny: dict[str, str] = p["deny"]  # type: ignore[assignment]
    rules: list[dict[str, object]] = []
    for err in ("EPERM", "ENOSYS"):
        names = sorted(n for n, e in deny.items() if e == err)
        rules.append({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": errnos[err]})
    flags: dict[str, dict[str, object]] = p["deny_flags"]  # type: ignore[assignment]
    for name, spec in sorted(flags.items()):
        for flag in spec["flags"]:  # type: ignore[attr-defined]
            arg = {
                "index": spec["arg"],
                "value": flag,
                "valueTwo": flag,
                "op": "SCMP_CMP_MASKED_EQ",
            }
            rules.append(
                {"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [arg]}
            )
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": rules,
    }


@functools.cache
def program(python: str = SYSTEM_PYTHON) -> bytes:
    """The compiled BPF program (cached per process). :class:`SandboxUnavailable` when
    libseccomp's binding is missing."""
    script = Path(__file__).with_name("seccomp_compile.py")
    try:
        out = subprocess.run(
            [python, "-I", str(script)],
            input=json.dumps(policy()).encode(),
            capture_output=True,
            timeout=30,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(
            f"cannot compile the seccomp filter with {python}: {exc}"
        ) from None
    if out.returncode != 0 or not out.stdout:
        err = out.stderr.decode(errors="replace").strip().splitlines()
        hint = err[-1] if err else f"exit code {out.returncode}"
        raise SandboxUnavailable(
            f"cannot compile the seccomp filter with {python} ({hint}): install libseccomp's "
            "Python binding (apt-get install python3-seccomp)"
        )
    return out.stdout


def program_fd(bpf: bytes) -> int:
    """A memfd holding ``bpf``, positioned at its start (for ``bwrap --seccomp FD``)."""
    fd = os.memfd_create("kinitro-seccomp", 0)
    try:
        os.write(fd, bpf)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd
