"""Compile the sandbox's seccomp policy to a BPF program with libseccomp's Python binding.

Run as a script by the distribution's own interpreter (``/usr/bin/python3``), where
Debian's ``python3-seccomp`` — libseccomp's official binding, maintained with it — is
installed; the evaluator's environment never imports it, so its Python version does not
have to match the distribution's. Reads the policy as JSON on stdin (see
:mod:`kinitro.evaluator.sandbox.seccomp`), writes the program (``seccomp_export_bpf``) to
stdout, and names the syscalls this libseccomp does not know on stderr. Standard library
and ``seccomp`` only.
"""

import errno
import json
import sys
import tempfile

import seccomp


def main() -> int:
    policy = json.load(sys.stdin)
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)  # native arch only: others are killed
    unknown = []
    for name, err in policy["deny"].items():
        try:
            f.add_rule(seccomp.ERRNO(getattr(errno, err)), name)
        except (RuntimeError, ValueError):
            unknown.append(name)
    for name, spec in policy["deny_flags"].items():
        for flag in spec["flags"]:
            try:
                arg = seccomp.Arg(spec["arg"], seccomp.MASKED_EQ, flag, flag)
                f.add_rule(seccomp.ERRNO(errno.EPERM), name, arg)
            except (RuntimeError, ValueError):
                unknown.append(name)
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        sys.stdout.buffer.write(out.read())
        sys.stdout.buffer.flush()
    if unknown:
        sys.stderr.write(" ".join(sorted(set(unknown))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
