"""The systemd units in deploy/systemd: ``systemd-analyze verify`` and what each must have.

``systemd-analyze verify`` (Debian's ``systemd``; ``scripts/bootstrap`` installs it when
missing) checks every directive and that ``ExecStart`` is executable: the test verifies
copies whose ``/opt/kinitro/venv`` prefix points at this environment's ``kinitro``, and
any warning fails. Our rules: restart on failure, memory/task/file limits, the
environment file per role, an unprivileged user and a read-only system for the backend
and the validator, cgroup delegation for the evaluator's sandboxes, and no restart loop
when the backend refuses the validator's release.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kinitro.validator.cli import EXIT_INCOMPATIBLE

ROOT = Path(__file__).resolve().parents[2]
UNITS = {
    role: ROOT / "deploy" / "systemd" / f"kinitro-{role}.service"
    for role in ("backend", "validator", "evaluator")
}
PREFIX = "/opt/kinitro/venv/bin/kinitro"


def _service(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return dict(parser["Service"])


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_has_what_production_needs(role: str) -> None:
    service = _service(UNITS[role])
    assert service["ExecStart"] == f"{PREFIX} {role} run"
    assert service["EnvironmentFile"] == f"/etc/kinitro/{role}.env"
    assert service["Restart"] == "on-failure" and float(service["RestartSec"]) > 0
    for limit in ("MemoryMax", "TasksMax", "LimitNOFILE"):
        assert service.get(limit), f"{role}: {limit} missing"
    assert service["NoNewPrivileges"] == "yes"
    if role == "evaluator":
        assert set(service["Delegate"].split()) >= {"memory", "pids", "cpu", "cpuset"}
        assert service["KillMode"] == "control-group"
        assert "RestrictNamespaces" not in service and "PrivateUsers" not in service
    else:
        assert service["User"] == "kinitro" and service["ProtectSystem"] == "strict"
        assert service["CapabilityBoundingSet"] == ""
    if role == "validator":
        assert str(EXIT_INCOMPATIBLE) in service["RestartPreventExitStatus"].split()


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian: apt-get install systemd)")
    kinitro = Path(sys.executable).parent / "kinitro"
    assert kinitro.exists()
    copies = []
    for path in UNITS.values():
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace(PREFIX, str(kinitro)))
        copies.append(str(copy))
    out = subprocess.run(
        [analyze, "verify", "--man=no", *copies],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr
