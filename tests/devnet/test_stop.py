"""`kinitro devnet up` stops on SIGINT with everything it started, even when it was
started with SIGINT ignored (the background of a non-interactive shell, a CI job): before,
such a devnet ignored the signal and, killed, left its chain, backend, validators,
evaluators and render worker running without it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kinitro.core.pgcluster import PostgresCluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_sigint_stops_a_devnet_started_with_sigint_ignored(tmp_path: Path) -> None:
    data_dir = tmp_path / "devnet"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINITRO_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kinitro", "devnet", "up", "--data-dir", str(data_dir), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**env, "NO_COLOR": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    pids_file = data_dir / "pids.json"
    try:
        deadline = time.monotonic() + 120
        pids: dict[str, int] = {}
        while "backend" not in pids:
            assert proc.poll() is None, f"devnet exited {proc.returncode}"
            assert time.monotonic() < deadline, "the devnet did not start its backend"
            time.sleep(0.5)
            if pids_file.exists():
                try:
                    pids = json.loads(pids_file.read_text())
                except ValueError:
                    pids = {}  # being written
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) in (0, 130)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert not pids_file.exists()
    assert not [name for name, pid in pids.items() if _alive(int(pid))]
    assert not PostgresCluster(data_dir / "postgres").is_running()
