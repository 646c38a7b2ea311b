"""`kinitro --help` and every group's help work, fast, without heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

GROUPS = ["backend", "validator", "evaluator", "miner", "chain", "devnet", "db"]
HEAVY = ["ray", "bittensor", "sqlalchemy", "mujoco", "metaworld", "gymnasium", "torch", "fastapi"]


def _kinitro(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinitro", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("group", [None, *GROUPS])
def test_help_works(group: str | None) -> None:
    args = [group, "--help"] if group else ["--help"]
    result = _kinitro(*args)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_root_help_lists_every_group() -> None:
    out = _kinitro("--help").stdout
    for group in GROUPS:
        assert group in out


def test_help_does_not_import_heavy_libraries() -> None:
    probe = (
        "import sys, json\n"
        "from kinitro.cli.main import app\n"
        "try:\n"
        "    app(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_help_is_fast() -> None:
    _kinitro("--help")  # warm the bytecode cache
    start = time.perf_counter()
    assert _kinitro("--help").returncode == 0
    assert time.perf_counter() - start < 2.0


def test_version() -> None:
    result = _kinitro("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("kinitro ")
