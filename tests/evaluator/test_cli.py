"""Subprocess smoke tests: `kinitro miner eval`, `kinitro evaluator local|run`, `kinitro replay`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from typer.testing import CliRunner

from kinitro.cli.main import app
from kinitro.evaluator.envs import EnvConfig, derive_episode_seed, get_benchmark, make_env
from kinitro.evaluator.episode_logger import EpisodeRecorder, encode_action_log
from kinitro.miner.eval_cmd import _print_table


def kinitro(
    *args: str, cwd: Path | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinitro", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **env},
    )


def test_miner_eval_json_on_the_template_agent(tmp_path: Path, ray_session: str) -> None:
    """`kinitro miner init` writes the template; it solves reach through the validator path.

    Attaches to the session's Ray (``--ray-address``) rather than starting another one.
    """
    bundle = tmp_path / "agent"
    tmp_path.chmod(0o755)
    init = kinitro("miner", "init", str(bundle))
    assert init.returncode == 0, init.stderr
    out = kinitro(
        "miner",
        "eval",
        str(bundle),
        "--episodes",
        "2",
        "--max-steps",
        "100",
        "--json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    overall = metrics["overall"]
    assert overall["episodes"] == 2 and overall["failures"] == {}, metrics
    assert overall["success_rate"] == 1.0
    assert set(metrics["per_task"]) == {"reach-v3"}


def test_miner_eval_bad_input(bundles: dict[str, Path], tmp_path: Path) -> None:
    missing = kinitro("miner", "eval", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not found" in missing.stderr
    not_bundle = kinitro("evaluator", "local", str(tmp_path), "--episodes", "1")
    assert not_bundle.returncode == 2 and "kinitro.toml" in not_bundle.stderr
    bad_bench = kinitro(
        "miner", "eval", str(bundles["random"]), "--benchmark", "metaworld/MT7-v3", "--json"
    )
    assert bad_bench.returncode == 1 and "unknown benchmark" in bad_bench.stderr


def test_miner_eval_results_table() -> None:
    task = {
        "episodes": 4,
        "successes": 3,
        "success_rate": 0.75,
        "ci_low": 0.3,
        "ci_high": 0.95,
        "mean_return": 120.5,
        "mean_steps_to_success": 33.0,
        "failures": {"agent_timeout": 1},
        "scored_episodes": 4,
    }
    console = Console(record=True, width=80)
    _print_table(
        console, "metaworld/MT1-reach-v3", {"per_task": {"reach-v3": task}, "overall": task}
    )
    text = console.export_text()
    for needle in ("reach-v3", "overall", "75.0%", "(30–95)", "120.5", "agent_timeout=1"):
        assert needle in text, text


def test_evaluator_run_requires_a_database() -> None:
    out = kinitro("evaluator", "run")
    assert out.returncode == 2 and "database URL" in out.stderr
    down = kinitro("evaluator", "run", "--database-url", "postgresql://u:hunter2@127.0.0.1:1/v")
    assert down.returncode == 1 and "cannot reach the validator database" in down.stderr
    assert "hunter2" not in down.stderr and "Traceback" not in down.stderr


def test_evaluator_run_refuses_an_incomplete_kubernetes_sandbox() -> None:
    run = ("evaluator", "run", "--database-url", "postgresql://x/y")
    out = kinitro(*run, KINITRO_EVALUATOR_SANDBOX="kubernetes")
    assert out.returncode == 2, out.stderr
    assert "KINITRO_EVALUATOR_KUBERNETES_IMAGE" in out.stderr and "Traceback" not in out.stderr
    typo = kinitro(*run, KINITRO_EVALUATOR_SANDBOX="docker")
    assert typo.returncode == 2
    assert "KINITRO_EVALUATOR_SANDBOX or [evaluator] sandbox" in " ".join(typo.stderr.split())


def _logged_episode(path: Path) -> None:
    bench = get_benchmark("metaworld/MT1-push-v3")
    env = make_env(bench, "push-v3", EnvConfig(max_steps=30))
    seed = derive_episode_seed(3, "push-v3", 0)
    rec = EpisodeRecorder(30, 4, 0)
    env.reset(seed)
    rng = np.random.default_rng(0)
    for step in range(1, 31):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        out = env.step(action)
        rec.record(step, out.observation, action, out.reward, out.success, out.info)
        if out.terminated or out.truncated:
            break
    env.close()
    log = rec.action_log(
        benchmark_id=bench.benchmark_id,
        task="push-v3",
        job_id="j",
        episode_index=0,
        seed=seed,
        max_steps=30,
    )
    path.write_bytes(encode_action_log(log))


def test_replay_matches_and_detects_tampering(tmp_path: Path) -> None:
    log_file = tmp_path / "actions.kact"
    _logged_episode(log_file)
    ok = kinitro("replay", str(log_file), "--json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] and report["exact"] and report["steps"] == 30
    runner = CliRunner()
    human = runner.invoke(app, ["replay", str(log_file)])
    assert human.exit_code == 0 and "match" in human.output
    data = bytearray(log_file.read_bytes())
    data[-30 - 8 * 30 + 8 * 5 : -30 - 8 * 30 + 8 * 6] = np.float64(123.0).tobytes()
    (tmp_path / "bad.kact").write_bytes(bytes(data))
    bad = runner.invoke(app, ["replay", str(tmp_path / "bad.kact"), "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["first_mismatch_step"] == 6
    garbage = tmp_path / "garbage.kact"
    garbage.write_bytes(b"not a log")
    out = kinitro("replay", str(garbage))
    assert out.returncode == 2 and "action log" in out.stderr
