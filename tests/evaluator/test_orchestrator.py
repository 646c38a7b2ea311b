"""`kinitro evaluator run` against a real validator database (pgqueuer), as a subprocess.

Covers the lifecycle reported through the outbox, telemetry, and crash recovery: the
evaluator is SIGKILLed mid-job, a new one picks the job up after the queue's heartbeat
timeout and the job reports exactly one result.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kinitro.jobqueue import JobQueue
from kinitro.protocol.common import BenchmarkSpec, JobState
from kinitro.protocol.validator_ws import EvalJob
from kinitro.storage.artifacts import LocalRegistry
from kinitro.storage.bundle import package_bundle

MINER_HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


class Evaluator:
    """An evaluator subprocess in its own process group, attached to the session's Ray."""

    def __init__(self, url: str, workdir: Path, ray_address: str) -> None:
        self.log = (workdir / f"evaluator-{time.monotonic_ns()}.log").open("wb")
        env = dict(
            os.environ,
            KINITRO_EVALUATOR_ARTIFACTS_DIR=str(workdir / "artifacts"),
            KINITRO_EVALUATOR_BUNDLE_CACHE_DIR=str(workdir / "bundles"),
            KINITRO_EVALUATOR_RAY_NUM_CPUS="2",
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kinitro",
                "evaluator",
                "run",
                "--database-url",
                url,
                "--fast-timers",
                "--media",
                str(workdir / "media"),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
        # Leftovers of the group (Ray raylet/gcs/workers) if any.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def evaluators(validator_db_url: str, workdir: Path) -> Iterator[list[Evaluator]]:
    started: list[Evaluator] = []
    try:
        yield started
    finally:
        for ev in started:
            ev.stop()


def _job(workdir: Path, bundle: Path, job_id: str, *, episodes: int, max_steps: int) -> EvalJob:
    archive = package_bundle(bundle, workdir / f"{job_id}.tar").path
    ref = LocalRegistry(workdir / "artifacts").upload(archive, "miner/agent")
    return EvalJob(
        job_id=job_id,
        submission_id="sub-1",
        competition_id="reach",
        miner_hotkey=MINER_HOTKEY,
        miner_uid=3,
        artifact=ref,
        benchmark=BenchmarkSpec(
            benchmark_id="metaworld/MT1-reach-v3",
            tasks=["reach-v3"],
            episodes_per_task=episodes,
            max_steps=max_steps,
            step_log_interval=20,
        ),
        round_id="round-1",
        seed=int(hashlib.sha256(job_id.encode()).hexdigest()[:8], 16),
        deadline_s=600,
        created_at=datetime.now(UTC),
    )


async def _outbox(jq: JobQueue, job_id: str) -> list[dict]:
    entries = await jq.pending_outbox(limit=10_000)
    return [json.loads(e.payload) for e in entries if e.job_id == job_id]


async def _wait(predicate, limit_s: float, what: str, ev: Evaluator | None = None):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        if ev is not None and ev.proc.poll() is not None:
            raise AssertionError(f"evaluator exited with {ev.proc.returncode} waiting for {what}")
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.e2e
@pytest.mark.timeout(300)  # two evaluator processes, each starting its own Ray
async def test_lifecycle_and_crash_recovery(
    validator_db_url: str,
    workdir: Path,
    bundles: dict[str, Path],
    evaluators: list[Evaluator],
    ray_session: str,
) -> None:
    """Job A runs to completion; job B is interrupted by SIGKILL, re-run, reported once."""
    jq = JobQueue.connect(validator_db_url, pool_size=2)
    try:
        life = _job(workdir, bundles["reach"], "job-life", episodes=3, max_steps=80)
        kill = _job(workdir, bundles["slow"], "job-kill", episodes=5, max_steps=50)
        await jq.enqueue_job(life)
        await jq.enqueue_job(kill)
        evaluators.append(first := Evaluator(validator_db_url, workdir, ray_session))

        async def has_result(job_id: str) -> bool:
            return bool((await jq.get_job_record(job_id)).has_result)

        # --- job A: the whole lifecycle through the outbox
        await _wait(lambda: has_result(life.job_id), 120, "job A's result", first)
        msgs = await _outbox(jq, life.job_id)
        kinds = [m["type"] for m in msgs]
        states = [m["state"] for m in msgs if m["type"] == "job_status"]
        assert states[0] == "starting" and "running" in states and states[-1] == "completed"
        seqs = [m["seq"] for m in msgs if m["type"] == "job_status"]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert kinds[-1] == "eval_result" and kinds.count("eval_result") == 1
        result = msgs[-1]
        assert result["state"] == "completed"
        assert result["metrics"]["overall"]["success_rate"] == 1.0
        episodes = [m for m in msgs if m["type"] == "episode"]
        assert sorted(m["episode_index"] for m in episodes) == [0, 1, 2]
        for ep in episodes:
            key = ep["actions_ref"]
            assert key and (workdir / "media" / key).is_file()
        assert any(m["type"] == "episode_steps" for m in msgs)
        record = await jq.get_job_record(life.job_id)
        assert record.state == JobState.COMPLETED and record.episodes_done == 3

        # --- job B: SIGKILL the evaluator mid-job, a new one finishes it
        async def some_episode() -> bool:
            return any(m["type"] == "episode" for m in await _outbox(jq, kill.job_id))

        await _wait(some_episode, 90, "job B's first episode", first)
        assert not await has_result(kill.job_id)
        first.kill()  # SIGKILL the evaluator: its Ray driver dies, so do its actors/sandboxes

        evaluators.append(second := Evaluator(validator_db_url, workdir, ray_session))
        await _wait(lambda: has_result(kill.job_id), 120, "job B's result after restart", second)
        msgs = await _outbox(jq, kill.job_id)
        results = [m for m in msgs if m["type"] == "eval_result"]
        assert len(results) == 1 and results[0]["state"] == "completed"
        assert results[0]["metrics"]["overall"]["episodes"] == 5
        starts = [m for m in msgs if m["type"] == "job_status" and m["state"] == "starting"]
        assert len(starts) == 2  # the job really ran twice
        assert {m["episode_index"] for m in msgs if m["type"] == "episode"} == set(range(5))
        # Episode messages of both runs share ids (derived from job and index): no duplicates.
        ids = [m["id"] for m in msgs]
        assert len(ids) == len(set(ids))
        assert (await jq.get_job_record(kill.job_id)).state == JobState.COMPLETED
        # Job A was not touched by the restart.
        assert [m["type"] for m in await _outbox(jq, life.job_id)].count("eval_result") == 1
        # SIGTERM: a clean, prompt exit.
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(timeout=60) == 0
    finally:
        await jq.close()
