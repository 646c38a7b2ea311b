"""pgqueuer timers: a crashed evaluator's job is picked up again; a slow one's is not run
twice. Real consumer processes (pgqueuer QueueManager) on the real validator database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kinitro.jobqueue import JobQueue

from .factories import make_job

CONSUMER = Path(__file__).with_name("pgq_consumer.py")
REPO = Path(__file__).resolve().parents[2]


def start_consumer(
    url: str, heartbeat_s: float, sleep_s: float, markers: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(CONSUMER), url, str(heartbeat_s), str(sleep_s), str(markers)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _glob(markers: Path, pattern: str) -> list[Path]:
    return sorted(markers.glob(pattern))


async def wait_marker(markers: Path, pattern: str, within: float) -> list[Path]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = _glob(markers, pattern)
        if found:
            return found
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no {pattern} in {markers}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)


async def results_in_outbox(jq: JobQueue, job_id: str) -> int:
    return sum(
        1
        for e in await jq.pending_outbox(limit=1000)
        if e.type == "eval_result" and e.job_id == job_id
    )


async def test_crashed_consumer_job_is_picked_up_again(
    jq: JobQueue, validator_db_url: str, tmp_path: Path
) -> None:
    heartbeat = 2.0
    job = make_job()
    await jq.enqueue_job(job)
    first = start_consumer(validator_db_url, heartbeat, 60, tmp_path)
    second = None
    try:
        await wait_marker(tmp_path, f"{job.job_id}.*.started", 30)
        assert (await jq.depths()).jobs_in_flight == 1
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        killed_at = time.monotonic()
        second = start_consumer(validator_db_url, heartbeat, 0.1, tmp_path)
        (done,) = await wait_marker(tmp_path, f"{job.job_id}.*.done", 30)
        repicked_after = time.monotonic() - killed_at
        assert done.name.split(".")[1] == str(second.pid)
        # re-picked once the heartbeat went stale, not before
        assert repicked_after < heartbeat + 8
        assert await results_in_outbox(jq, job.job_id) == 1
        print(
            f"crashed consumer's job re-picked after {repicked_after:.1f}s (timeout {heartbeat}s)"
        )
    finally:
        stop(first)
        if second is not None:
            stop(second)


async def test_slow_consumer_job_is_not_run_twice(
    jq: JobQueue, validator_db_url: str, tmp_path: Path
) -> None:
    heartbeat = 1.0
    job = make_job()
    await jq.enqueue_job(job)
    slow = start_consumer(validator_db_url, heartbeat, 4 * heartbeat, tmp_path)
    other = None
    try:
        await wait_marker(tmp_path, f"{job.job_id}.*.started", 30)
        other = start_consumer(validator_db_url, heartbeat, 0.1, tmp_path)
        await wait_marker(tmp_path, f"{job.job_id}.*.done", 30)
        await asyncio.sleep(heartbeat)
        started = _glob(tmp_path, f"{job.job_id}.*.started")
        assert [p.name.split(".")[1] for p in started] == [str(slow.pid)]
        assert await results_in_outbox(jq, job.job_id) == 1
        assert (await jq.depths()).jobs_in_flight == 0
    finally:
        stop(slow)
        if other is not None:
            stop(other)
