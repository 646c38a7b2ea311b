"""The built wheel is what an operator installs: complete, and working from a fresh venv.

The devnet run from the installed wheel (``kinitro devnet up --exit-after-weights``) is in
``tests/devnet/test_devnet_e2e.py``, which runs its whole network from this venv.
"""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from kinitro import __version__

if TYPE_CHECKING:
    from tests.conftest import InstalledWheel

REPO = Path(__file__).resolve().parents[2]


def _names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_wheel_carries_dashboard_migrations_and_template(installed_wheel: InstalledWheel) -> None:
    names = _names(installed_wheel.wheel)
    static = "kinitro/backend/web/static/"
    with zipfile.ZipFile(installed_wheel.wheel) as zf:
        index = zf.read(static + "index.html").decode()
        entry_points = zf.read(f"kinitro-{__version__}.dist-info/entry_points.txt").decode()
    assets = re.findall(r'(?:src|href)="/(assets/[^"]+)"', index)
    assert assets, index
    for asset in assets:
        assert static + asset in names, asset
    for tree in ("backend", "jobqueue"):
        in_repo = sorted(
            p.name for p in (REPO / "src/kinitro" / tree / "migrations/versions").glob("*.py")
        )
        in_wheel = sorted(
            Path(n).name for n in names if n.startswith(f"kinitro/{tree}/migrations/versions/")
        )
        assert in_wheel == in_repo and in_repo, tree
        assert f"kinitro/{tree}/migrations/env.py" in names
    assert {"kinitro/miner/template/agent.py.tmpl", "kinitro/miner/template/kinitro.toml.tmpl"} <= (
        names
    )
    assert "kinitro = kinitro.cli.main:main" in entry_points
    # sources and node tooling of the dashboard are not shipped
    assert not [n for n in names if "/web/src/" in n or "node_modules" in n or "package" in n]


def test_installed_cli_runs_from_the_fresh_venv(
    installed_wheel: InstalledWheel, tmp_path: Path
) -> None:
    def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )

    help_ = run(installed_wheel.kinitro, "--help")
    assert help_.returncode == 0, help_.stderr
    for group in ("backend", "validator", "evaluator", "miner", "chain", "devnet", "db"):
        assert group in help_.stdout
    assert run(installed_wheel.kinitro, "--version").stdout.strip() == f"kinitro {__version__}"
    where = run(installed_wheel.python, "-c", "import kinitro; print(kinitro.__file__)")
    assert where.stdout.startswith(str(installed_wheel.venv)), where  # not the repo's src/
    check = run(installed_wheel.python, "-m", "pip", "check")
    assert check.returncode == 0, check.stdout + check.stderr
