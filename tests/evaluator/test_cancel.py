"""A job the backend cancels (``cancel_job``: its submission was superseded) stops on the
validator: the validator database marks it, the evaluator sees it within a second, stops
its Ray actors and sandboxes mid-episode, reports nothing more for it, and takes the next
job. Real validator database (PostgreSQL + pgqueuer), Ray actors, bubblewrap sandbox."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from kinitro.evaluator.orchestrator import Orchestrator
from kinitro.evaluator.settings import Settings
from kinitro.jobqueue import JobQueue
from kinitro.protocol.common import JobState

from .test_orchestrator import _job

TIMEOUT_S = 120


async def _until(predicate, what: str, limit_s: float = TIMEOUT_S):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_cancelled_job_stops_within_seconds_and_frees_its_worker(
    validator_db_url: str, workdir: Path, bundles: dict[str, Path], ray_session: str
) -> None:
    jq = JobQueue.connect(validator_db_url)
    # ~4 × 500 steps × 20 ms: it would hold the evaluator for 40 s
    slow = _job(workdir, bundles["slow"], "job-superseded", episodes=4, max_steps=500)
    after = _job(workdir, bundles["reach_single"], "job-after", episodes=1, max_steps=40)
    await jq.enqueue_job(slow)
    await jq.enqueue_job(after)
    orch = Orchestrator(
        Settings(
            artifacts_dir=workdir / "artifacts",
            bundle_cache_dir=workdir / "bundles",
            media_url=str(workdir / "media"),
            fast_timers=True,
        ),
        jq,
        jq,
    )
    consumer = asyncio.create_task(
        jq.consume(orch.handle_job, concurrency=1, timers=orch.timers, stop=orch.stopping)
    )
    try:

        async def playing() -> bool:
            record = await jq.get_job_record(slow.job_id)
            return slow.job_id in orch.in_flight and record.state is JobState.RUNNING

        await _until(playing, "the slow job to run")
        await asyncio.sleep(2.0)  # well inside its first episode
        assert await jq.cancel_job(slow.job_id, "superseded by submission 2")
        cancelled_at = time.monotonic()

        async def stopped() -> bool:
            return slow.job_id not in orch.in_flight

        await _until(stopped, "the cancelled job to stop", limit_s=30)
        stop_s = time.monotonic() - cancelled_at
        print(f"stopped {stop_s:.2f} s after the cancellation")
        assert stop_s < 8.0, f"stopped {stop_s:.1f} s after the cancellation"

        async def next_done() -> bool:
            return (await jq.get_job_record(after.job_id)).has_result

        await _until(next_done, "the next job to be played")  # the worker is free again
    finally:
        orch.stop()
        await asyncio.wait_for(consumer, 30)
    record = await jq.get_job_record(slow.job_id)
    assert record.state is JobState.CANCELLED and not record.has_result
    assert record.detail == "superseded by submission 2"
    outbox = [json.loads(e.payload) for e in await jq.pending_outbox(limit=10_000)]
    mine = [m for m in outbox if m["job_id"] == slow.job_id]
    assert not [m for m in mine if m["type"] == "eval_result"]
    assert all(m["state"] in ("starting", "running") for m in mine if m["type"] == "job_status")
    [result] = [m for m in outbox if m["job_id"] == after.job_id and m["type"] == "eval_result"]
    assert result["state"] == "completed"
    await jq.close()
