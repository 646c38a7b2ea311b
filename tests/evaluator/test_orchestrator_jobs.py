"""Orchestrator job handling in-process on the real path (PostgreSQL, shared Ray,
bubblewrap): the deadline stops the pool and its sandboxes. Lifecycle logic without
them: test_lifecycle.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kinitro.evaluator.orchestrator import Orchestrator
from kinitro.evaluator.settings import Settings
from kinitro.jobqueue import JobQueue
from kinitro.protocol.common import JobState

from .test_orchestrator import _job, _outbox

pytestmark = pytest.mark.usefixtures("ray_session")


def _settings(url: str, workdir: Path, **kw: object) -> Settings:
    return Settings(
        database_url=url,
        artifacts_dir=workdir / "artifacts",
        bundle_cache_dir=workdir / "bundles",
        media_url=str(workdir / "media"),
        fast_timers=True,
        **kw,
    )


def _runtimes(bundle: Path) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [
        line for line in ps.splitlines() if "kinitro_agent.runtime" in line and "bwrap" not in line
    ]


async def test_deadline_ends_the_job_timed_out_and_cleans_up(
    validator_db_url: str, workdir: Path, bundles: dict[str, Path]
) -> None:
    tmp_path = workdir
    jq = JobQueue.connect(validator_db_url, pool_size=2)
    try:
        job = _job(tmp_path, bundles["slow"], "job-deadline", episodes=20, max_steps=100)
        await jq.enqueue_job(job)
        before = _runtimes(bundles["slow"])
        orch = Orchestrator(_settings(validator_db_url, tmp_path, job_deadline_s=6.0), jq, jq)
        await orch.handle_job(job.job_id)
        msgs = await _outbox(jq, job.job_id)
        result = next(m for m in msgs if m["type"] == "eval_result")
        assert result["state"] == "timed_out" and "deadline" in result["error"]
        statuses = [m["state"] for m in msgs if m["type"] == "job_status"]
        assert statuses[0] == "starting" and statuses[-1] == "timed_out"
        assert (await jq.get_job_record(job.job_id)).state == JobState.TIMED_OUT
        # Sandboxes of the stopped pool are gone.
        assert len(_runtimes(bundles["slow"])) <= len(before)
        # A second delivery of the finished job is skipped: still one result.
        await orch.handle_job(job.job_id)
        kinds = [m["type"] for m in await _outbox(jq, job.job_id)]
        assert kinds.count("eval_result") == 1
    finally:
        await jq.close()
