"""`kinitro miner eval` explains every failure: a broken bundle is refused in a second with
`package`'s message; a failed episode shows its cause, the evaluator's detail and the
agent's traceback or stderr tail, in the table output and in the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kinitro.miner.submit_cmds import TEMPLATE_DIR, TEMPLATE_FILES


def _bundle(root: Path, name: str, edit: tuple[str, str] | None = None) -> Path:
    path = root / name
    path.mkdir(parents=True)
    for src, out in TEMPLATE_FILES.items():
        (path / out).write_text((TEMPLATE_DIR / src).read_text().replace("{name}", name))
    if edit is not None:
        agent = path / "agent.py"
        text = agent.read_text()
        assert edit[0] in text
        agent.write_text(text.replace(edit[0], edit[1]))
    for p in [root, path, *path.iterdir()]:  # the sandbox runs agents as another uid
        p.chmod(0o755 if p.is_dir() else 0o644)
    return path


def _eval(bundle: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "kinitro", "miner", "eval", str(bundle), *extra],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=bundle.parent,
        check=False,
    )


ACT = "        return np.concatenate([move, [0.0]]).astype(np.float32)"


@pytest.mark.parametrize(
    ("edit", "manifest", "message"),
    [
        (
            ("    def close(self) -> None:", "    def close(self:"),
            None,
            "error: invalid bundle: agent.py has a syntax error at line 42: '(' was never closed",
        ),
        (None, ("agent:Agent", "agent:Agnt"), "error: invalid bundle: agent.py does not define "),
    ],
    ids=["syntax-error", "wrong-entrypoint"],
)
def test_broken_bundle_refused_before_any_episode(
    tmp_path: Path,
    edit: tuple[str, str] | None,
    manifest: tuple[str, str] | None,
    message: str,
) -> None:
    bundle = _bundle(tmp_path, "broken", edit)
    if manifest is not None:
        toml = bundle / "kinitro.toml"
        toml.write_text(toml.read_text().replace(*manifest))
    started = time.monotonic()
    result = _eval(bundle, "--episodes", "1", "--max-steps", "10")
    took = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith(message), result.stderr
    assert "Traceback" not in result.stderr and "evaluating" not in result.stderr
    assert took < 15, f"took {took:.1f} s: the sandbox was started"


def test_invalid_action_detail_in_json(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "shape", (ACT, "        return move.astype(np.float32)"))
    result = _eval(bundle, "--episodes", "2", "--max-steps", "10", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["overall"]["failures"] == {"invalid_action": 2}
    [group] = metrics["failure_details"]
    assert group["cause"] == "invalid_action" and group["scored"] is True
    assert group["episodes"] == [0, 1]
    assert group["detail"] == (
        "act_batch: agent reported invalid_action: action: shape (3,), expected (4,)"
    )
    assert "4 finite float32 values" in group["hint"]


def test_crash_shows_traceback_and_stderr_tail(tmp_path: Path) -> None:
    dying = (
        "        import os, sys\n"
        "        print('loading policy head', file=sys.stderr)\n"
        "        print('weights.bin: no such file', file=sys.stderr, flush=True)\n"
        "        os._exit(3)\n"
    )
    bundle = _bundle(tmp_path, "dies", (ACT, dying))
    result = _eval(bundle, "--episodes", "1", "--max-steps", "10")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "agent_crash in episode 0 (scored against you)" in out, out
    assert "act_batch: connection closed (exited with code 3: stderr ends" in out, out
    assert "    loading policy head\n    weights.bin: no such file)" in out, out
    assert "what to do: your agent raised" in out
    assert f"next: fix the failures above, then kinitro miner eval {bundle} again" in out
