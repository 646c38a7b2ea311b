"""BubblewrapSandbox: isolation properties, output capture, start failures, cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import kinitro_agent
from kinitro.evaluator.agent_client import AgentClient, AgentCrashed
from kinitro.evaluator.sandbox import (
    BubblewrapSandbox,
    RunningSandbox,
    Sandbox,
    SandboxStartError,
    SandboxUnavailable,
)
from kinitro.protocol.agent_rpc import TaskInfo

from .conftest import (
    ACTION_SPEC,
    OBS_SPEC,
    TIGHT_LIMITS,
    TIMEOUTS,
    BundleFactory,
    processes_of_uid,
)

INSPECTOR = """
import json, os, resource, sys
import numpy as np

class Agent:
    def reset(self, task):
        print("x" * 200_000)                  # more than the output cap
        print("to stderr", file=sys.stderr)

    def act(self, obs):
        limits = {name: resource.getrlimit(getattr(resource, name))[0]
                  for name in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_NOFILE",
                               "RLIMIT_FSIZE", "RLIMIT_CORE")}
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        report = {
            "uid": os.getuid(), "euid": os.geteuid(), "groups": os.getgroups(),
            "env": sorted(os.environ), "cwd": os.getcwd(), "pid": os.getpid(),
            "caps": status["CapEff"].strip(), "bnd": status["CapBnd"].strip(),
            "nnp": status["NoNewPrivs"].strip(), "limits": limits,
            "root": sorted(os.listdir("/")), "bundle_writable": os.access("/bundle", os.W_OK),
            "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        }
        raise RuntimeError("REPORT" + json.dumps(report) + "END")
"""


def inspect(sandbox: BubblewrapSandbox, bundle: Path) -> tuple[dict[str, object], RunningSandbox]:
    running = sandbox.start(bundle)
    agent = AgentClient.connect(running.endpoint, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS)
    agent.hello()
    agent.reset(TaskInfo("reach-v3"))
    with pytest.raises(AgentCrashed) as exc:
        agent.act(np.zeros(39))
    text = str(exc.value)
    return json.loads(text[text.rindex("REPORT") + 6 : text.rindex("END")]), running


def test_isolation_properties(sandbox: BubblewrapSandbox, make_bundle: BundleFactory) -> None:
    assert isinstance(sandbox, Sandbox)  # the port is structural
    report, running = inspect(sandbox, make_bundle(INSPECTOR))
    try:
        assert report["uid"] == report["euid"] == running.uid  # type: ignore[attr-defined]
        assert report["uid"] != 0 and report["groups"] == []
        assert report["caps"] == "0000000000000000" and report["bnd"] == "0000000000000000"
        assert report["nnp"] == "1"
        assert report["cwd"] == "/tmp" and report["bundle_writable"] is False
        assert "/bundle" not in report["env"] and not any(
            k.startswith(("KINITRO", "AWS", "HF_", "BT_"))
            for k in report["env"]  # type: ignore[union-attr]
        )
        assert set(report["env"]) <= {  # type: ignore[arg-type]
            "PATH",
            "HOME",
            "TMPDIR",
            "LANG",
            "PYTHONUNBUFFERED",
            "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS",
            "MKL_NUM_THREADS",
            "NUMEXPR_NUM_THREADS",
            "PWD",
            "LC_CTYPE",
        }
        # Own pid namespace: only the namespace init and the runtime are visible.
        assert len(report["pids"]) <= 3  # type: ignore[arg-type]
        assert {"bundle", "tmp", "proc", "dev", "usr"} <= set(report["root"])  # type: ignore[arg-type]
        assert "home" not in report["root"] and "var" not in report["root"]  # type: ignore[operator]
        limits = report["limits"]
        assert limits == {  # type: ignore[comparison-overlap]
            "RLIMIT_CPU": TIGHT_LIMITS.cpu_seconds,
            # memory is the cgroup's; the address space is bounded only without one
            "RLIMIT_AS": -1 if running.cgroup is not None else TIGHT_LIMITS.memory_bytes,
            "RLIMIT_NPROC": TIGHT_LIMITS.max_processes,
            "RLIMIT_NOFILE": TIGHT_LIMITS.max_open_files,
            "RLIMIT_FSIZE": TIGHT_LIMITS.max_file_size,
            "RLIMIT_CORE": 0,
        }
    finally:
        result = running.close()
    assert result.reason == "killed on close"
    assert len(result.stdout) == TIGHT_LIMITS.output_bytes and result.stdout_dropped > 0
    assert b"to stderr" in result.stderr
    assert processes_of_uid(running.uid) == []
    assert running.close() is result  # idempotent


def test_missing_bundle_dir(sandbox: BubblewrapSandbox, tmp_path: Path) -> None:
    with pytest.raises(SandboxStartError, match="does not exist"):
        sandbox.start(tmp_path / "nope")


def test_unreadable_bundle_is_refused(
    sandbox: BubblewrapSandbox, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle()
    os.chmod(bundle / "agent.py", 0o600)
    with pytest.raises(SandboxStartError, match="not readable by other users"):
        sandbox.start(bundle)


def test_broken_interpreter_is_a_start_error(make_bundle: BundleFactory, tmp_path: Path) -> None:
    env = tmp_path / "envs" / "base"
    (
        env
        / "lib"
        / "python3.11"
        / "site-packages"
        / f"kinitro_agent-{kinitro_agent.__version__}.dist-info"
    ).mkdir(parents=True)
    (env / "bin").mkdir()
    (env / "bin" / "python").write_text("#!/bin/sh\nexit 3\n")
    (env / "bin" / "python").chmod(0o755)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for p in [tmp_path, tmp_path / "envs", *env.rglob("*"), env]:
        p.chmod(p.stat().st_mode | 0o005)
    sandbox = BubblewrapSandbox(TIGHT_LIMITS, agent_envs=tmp_path / "envs")
    with pytest.raises(SandboxStartError, match="exited before it was ready"):
        sandbox.start(make_bundle())


def test_missing_agent_environment_is_unavailable(
    make_bundle: BundleFactory, tmp_path: Path
) -> None:
    sandbox = BubblewrapSandbox(TIGHT_LIMITS, agent_envs=tmp_path / "none")
    with pytest.raises(SandboxUnavailable, match="agent environment 'base' not found"):
        sandbox.start(make_bundle())
    bundle = make_bundle(manifest_extra='profile = "torch"\n', name="torch-bundle")
    with pytest.raises(SandboxUnavailable, match="KINITRO_AGENT_PROFILES='base torch'"):
        sandbox.start(bundle)


def test_start_deadline(make_bundle: BundleFactory) -> None:
    sandbox = BubblewrapSandbox(replace(TIGHT_LIMITS, start_timeout_s=0.001))
    with pytest.raises(SandboxStartError, match="not ready within"):
        sandbox.start(make_bundle())


def test_missing_bwrap() -> None:
    with pytest.raises(SandboxUnavailable):
        BubblewrapSandbox(bwrap="no-such-bwrap")


def test_crash_report_names_the_exit(
    sandbox: BubblewrapSandbox, make_bundle: BundleFactory
) -> None:
    src = """
    import os, signal
    class Agent:
        def reset(self, task): pass
        def act(self, obs): os.kill(os.getpid(), signal.SIGSEGV)
    """
    with sandbox.start(make_bundle(src)) as running:
        agent = AgentClient.connect(running.endpoint, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS)
        agent.hello()
        agent.reset(TaskInfo("reach-v3"))
        with pytest.raises(AgentCrashed, match="SIGSEGV"):
            agent.act(np.zeros(39))
    assert running.close().reason is not None


def test_sandbox_inherits_a_pinned_core(make_bundle: BundleFactory) -> None:
    code = (
        "import os; from kinitro.evaluator.sandbox import BubblewrapSandbox, pin_to_one_core\n"
        "from pathlib import Path; import sys\n"
        "core = pin_to_one_core()\n"
        "from tests.sandbox.conftest import TIGHT_LIMITS\n"
        "with BubblewrapSandbox(TIGHT_LIMITS).start(Path(sys.argv[1])) as r:\n"
        "    pids = r.pids()\n"
        "    print(core, sorted({c for p in pids for c in os.sched_getaffinity(p)}))\n"
    )
    root = Path(__file__).parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code, str(make_bundle())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    assert out.returncode == 0, out.stderr
    core, cores = out.stdout.split(" ", 1)
    assert cores.strip() == f"[{core}]"


def test_private_tmp_is_mounted_before_the_interpreter_paths(tmp_path: Path) -> None:
    """An interpreter or venv under /tmp on the host (e.g. a fresh clone in /tmp) must be
    bound on top of the sandbox's private /tmp, not hidden by it."""

    argv = BubblewrapSandbox().argv(tmp_path, 3, 4, 100_001)
    tmpfs_at = argv.index("--tmpfs")
    binds = [i for i, arg in enumerate(argv) if arg == "--ro-bind"]
    python_binds = [i for i in binds if argv[i + 1].startswith(str(Path(sys.prefix).resolve()))]
    assert python_binds, argv
    assert all(i > tmpfs_at for i in python_binds), argv
