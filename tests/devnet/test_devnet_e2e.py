"""End-to-end: the whole devnet with a tiny budget reaches weights on chain.

The scripted miner leads, the near-copy committed later (one comment changed) is found by
its actions and gets nothing, and no
result is lost. The first test runs the network from the built wheel installed in a fresh
venv (``installed_wheel``: the ``kinitro`` console script, as an operator installs it),
scrapes the Prometheus metrics of every role (backend, validators, evaluators: real
processes on loopback), then resumes it with ``kinitro devnet up --exit-after-weights``.
A variant kills a validator and the backend during the run (the devnet supervisor
restarts them) and still converges to the same weights.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kinitro.core.pgcluster import PostgresCluster

from .episode_video import check_a_video_plays

if TYPE_CHECKING:
    from tests.conftest import InstalledWheel

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

EPISODES = 2
MAX_STEPS = 100


def _devnet(
    data_dir: Path, *extra: str, exit_after: bool = True, kinitro: Path | None = None
) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
    command = [str(kinitro)] if kinitro else [sys.executable, "-m", "kinitro"]
    return subprocess.Popen(
        [
            *command,
            "devnet",
            "up",
            "--data-dir",
            str(data_dir),
            *(["--exit-after-weights"] if exit_after else []),
            "--json",
            "--episodes",
            str(EPISODES),
            "--max-steps",
            str(MAX_STEPS),
            "--timeout",
            "600",
            "--round-seconds",
            "30",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(proc: subprocess.Popen[str], data_dir: Path) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=700)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        logs = "\n".join(
            f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
            for p in sorted((data_dir / "logs").glob("*.log"))
        )
        pytest.fail(f"devnet exited {proc.returncode}\nstderr:\n{err[-4000:]}\n{logs}")
    return json.loads(out.strip().splitlines()[-1])


def _check_converged(summary: dict[str, Any]) -> None:
    # the first round was revealed and `kinitro round verify` passed on it
    assert summary["round_verified"] is True, summary["round"]
    weights: dict[str, float] = summary["weights"]
    assert weights, summary
    scripted = weights.get("miner-scripted", 0.0)
    assert scripted > 0.0, weights
    assert scripted == max(weights.values()), weights
    assert weights.get("miner-copycat", 0.0) == 0.0, weights
    # the copy differs by one comment (another sha256): its behaviour gave it away
    rows = summary["leaderboard"]
    copy = next(r for r in rows if r.get("copy_of"))
    original = next(r for r in rows if r["submission_id"] == copy["copy_of"])
    assert copy["artifact_sha256"] != original["artifact_sha256"], rows
    assert copy["detail"]["copy_kind"] == "behaviour", copy
    assert summary["weights_by_hotkey"].get(copy["miner_hotkey"], 0.0) == 0.0, summary
    assert weights.get("miner-scripted", 0.0) > weights.get("miner-random", 0.0), weights


def _check_nothing_lost(summary: dict[str, Any]) -> None:
    """Every completed job has exactly one result per validator and all its episodes."""
    with httpx.Client(base_url=summary["backend_url"], timeout=10) as http:
        jobs = http.get("/api/v1/jobs", params={"limit": 500}).json()["items"]
        assert jobs
        completed = [j for j in jobs if j.get("state") == "completed"]
        assert completed, jobs
        for job in completed:
            detail = http.get(f"/api/v1/jobs/{job['id']}").json()
            results = detail.get("results", [])
            validators = {r["validator_hotkey"] for r in results}
            assert len(results) == len(validators), detail
            for validator in validators:
                episodes = http.get(
                    "/api/v1/episodes",
                    params={"job_id": job["id"], "validator_hotkey": validator, "limit": 500},
                ).json()
                assert episodes["total"] == EPISODES, (job["id"], episodes)
                indexes = sorted(e["episode_index"] for e in episodes["items"])
                assert indexes == list(range(EPISODES))


@pytest.fixture
def no_live_backend_after(tmp_path: Path):
    yield
    # The devnet must have stopped everything it started, its PostgreSQL included.
    pids = tmp_path / "devnet" / "pids.json"
    assert not pids.exists()
    assert not PostgresCluster(tmp_path / "devnet" / "postgres").is_running()


def _read_summary(proc: subprocess.Popen[str], data_dir: Path) -> dict[str, Any]:
    """Wait for the JSON summary line a running devnet prints once weights are on chain."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            return json.loads(line)
    _finish(proc, data_dir)
    pytest.fail("devnet printed no summary")


def _scrape(url: str) -> dict[str, float]:
    """Samples of a Prometheus endpoint: ``name{label="v",…}`` → value."""

    response = httpx.get(url, timeout=5)
    assert response.status_code == 200, (url, response.status_code)
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def _total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


def _check_metrics(data_dir: Path) -> None:
    """Every role serves its metrics, and they tell the story the network just lived."""
    state = json.loads((data_dir / "devnet.json").read_text())
    backend = _scrape(f"http://127.0.0.1:{state['backend_port']}/metrics")
    assert backend["kinitro_backend_validators_connected"] == 2

    def settled() -> bool:
        ports = state["metrics_ports"]
        validators = [_scrape(f"http://127.0.0.1:{ports[v]}/metrics") for v in VALIDATORS]
        evaluators = [_scrape(f"http://127.0.0.1:{ports[e]}/metrics") for e in EVALUATORS]
        return (
            all(v["kinitro_validator_connected"] == 1 for v in validators)
            and all(
                v['kinitro_validator_connection_state{state="connected"}'] == 1
                and v["kinitro_validator_outbox_lag_seconds"] >= 0
                and "kinitro_validator_jobs_queued" in v
                for v in validators
            )
            and max(v["kinitro_validator_weights_last_set_timestamp_seconds"] for v in validators)
            > 0
            and all(
                _total(e, "kinitro_evaluator_episodes_total") > 0
                and _total(e, "kinitro_evaluator_steps_total") > 0
                and e["kinitro_evaluator_sandbox_starts_total"] > 0
                and e["kinitro_evaluator_rollout_workers"] == 1
                and 'kinitro_evaluator_episode_failures_total{cause="sandbox_start",fault="infra"}'
                in e
                for e in evaluators
            )
        )

    deadline = time.monotonic() + 30  # the validators' gauges refresh every few seconds
    while not settled():
        assert time.monotonic() < deadline, "metrics did not settle"
        time.sleep(1)


VALIDATORS = ("validator-1", "validator-2")
EVALUATORS = ("evaluator-1", "evaluator-2")


def test_devnet_reaches_weights(
    tmp_path: Path, no_live_backend_after: None, installed_wheel: InstalledWheel
) -> None:
    data_dir = tmp_path / "devnet"
    proc = _devnet(data_dir, exit_after=False, kinitro=installed_wheel.kinitro)
    try:
        summary = _read_summary(proc, data_dir)
        _check_converged(summary)
        _check_nothing_lost(summary)
        _check_metrics(data_dir)
        video = check_a_video_plays(summary["backend_url"])
        print("devnet episode video:", video["render"].get("video"))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    assert proc.returncode in (0, 130)
    # Running it again resumes: the weights are already there, nothing is redone.
    second = _finish(_devnet(data_dir, kinitro=installed_wheel.kinitro), data_dir)
    _check_converged(second)


def _kill_when(data_dir: Path, name: str, condition, stop: threading.Event) -> None:
    """SIGKILL child ``name`` (by the devnet's pids.json) once ``condition()`` holds."""
    while not stop.is_set():
        try:
            if condition():
                pids = json.loads((data_dir / "pids.json").read_text())
                os.killpg(int(pids[name]), signal.SIGKILL)
                return
        except (OSError, KeyError, ValueError, httpx.HTTPError):
            pass
        time.sleep(0.5)


def test_devnet_survives_validator_and_backend_crash(tmp_path: Path) -> None:
    data_dir = tmp_path / "devnet"
    proc = _devnet(data_dir)
    stop = threading.Event()

    def backend_url() -> str:
        port = json.loads((data_dir / "devnet.json").read_text())["backend_port"]
        return f"http://127.0.0.1:{port}"

    def episodes_at_least(n: int):
        def check() -> bool:
            stats = httpx.get(f"{backend_url()}/api/v1/stats", timeout=2).json()
            return (
                int(
                    stats.get("episodes", {}).get("total", stats.get("episodes_total", 0))
                    if isinstance(stats.get("episodes"), dict)
                    else stats.get("episodes", 0)
                )
                >= n
            )

        return check

    killers = [
        threading.Thread(
            target=_kill_when, args=(data_dir, "validator-1", episodes_at_least(1), stop)
        ),
        threading.Thread(target=_kill_when, args=(data_dir, "backend", episodes_at_least(3), stop)),
    ]
    for t in killers:
        t.start()
    try:
        summary = _finish(proc, data_dir)
    finally:
        stop.set()
        for t in killers:
            t.join(5)
    _check_converged(summary)
    log = (data_dir / "logs" / "backend.log").read_text()
    assert log.count("starting kinitro backend run") >= 2, "backend was never killed"
