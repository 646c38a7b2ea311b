"""`kinitro db upgrade/current/downgrade` on empty databases, for both schemas."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _kinitro(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinitro", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("role", ["backend", "validator"])
def test_upgrade_current_downgrade(role: str, empty_db_url: str) -> None:
    up = _kinitro("db", "upgrade", "--role", role, "--url", empty_db_url)
    assert up.returncode == 0, up.stderr
    head = _kinitro("db", "current", "--role", role, "--url", empty_db_url)
    assert head.returncode == 0, head.stderr
    assert head.stdout.strip() not in ("", "(empty)")
    again = _kinitro("db", "upgrade", "--role", role, "--url", empty_db_url)
    assert again.returncode == 0, again.stderr  # idempotent
    down = _kinitro("db", "downgrade", "--role", role, "--url", empty_db_url)
    assert down.returncode == 0, down.stderr
    assert _kinitro("db", "current", "--role", role, "--url", empty_db_url).stdout.strip() == (
        "(empty)"
    )


def test_unknown_role_is_a_usage_error(empty_db_url: str) -> None:
    result = _kinitro("db", "upgrade", "--role", "miner", "--url", empty_db_url)
    assert result.returncode == 2
    assert "miner" in result.stderr


def test_unreachable_database_is_a_clear_error() -> None:
    result = _kinitro("db", "upgrade", "--role", "backend", "--url", "postgresql://x@127.0.0.1:1/x")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot connect" in result.stderr.lower()
