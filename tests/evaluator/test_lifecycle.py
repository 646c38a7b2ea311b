"""The job lifecycle of ``kinitro evaluator run`` on the validator database's in-memory
twin, with scripted rollouts: no PostgreSQL, no Ray, no sandbox. Deadlines, retries
through the queue, an outbox that fails, shutdown, bad bundles. (The real path — pgqueuer
in PostgreSQL, Ray actors, bubblewrap — is covered by test_orchestrator*.py.)"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from kinitro.evaluator.orchestrator import Orchestrator
from kinitro.evaluator.results import EpisodeResult, EpisodeSpec
from kinitro.evaluator.settings import Settings
from kinitro.evaluator.telemetry import message_id
from kinitro.jobqueue import MemoryJobQueue, RetryJob
from kinitro.protocol.common import FailureCause, JobState
from kinitro.protocol.validator_ws import EvalJob
from kinitro.storage.artifacts import LocalRegistry

from .scripted import ScriptedRollouts, scripted
from .test_orchestrator import _job, _outbox


def _settings(workdir: Path, **kw: object) -> Settings:
    return Settings(
        artifacts_dir=workdir / "artifacts",
        bundle_cache_dir=workdir / "bundles",
        media_url=str(workdir / "media"),
        fast_timers=True,
        **kw,
    )


async def _consume_until(
    orch: Orchestrator, twin: MemoryJobQueue, done: Callable[[], Awaitable[bool]], limit_s: float
) -> None:
    """Run the orchestrator on the twin's queue (as ``serve`` does) until ``done()``."""
    consumer = asyncio.create_task(
        twin.consume(orch.handle_job, concurrency=1, timers=orch.timers, stop=orch.stopping)
    )
    give_up = time.monotonic() + limit_s
    try:
        while not await done():
            assert time.monotonic() < give_up, "timed out"
            if consumer.done():
                consumer.result()
                raise AssertionError("consumer stopped")
            await asyncio.sleep(0.02)
    finally:
        orch.stop()
        await asyncio.wait_for(consumer, 10)


async def _job_on_twin(
    workdir: Path,
    bundle: Path,
    job_id: str,
    *,
    episodes: int,
    settings: dict[str, object] | None = None,
    **script: object,
) -> tuple[MemoryJobQueue, EvalJob, Orchestrator, list[ScriptedRollouts]]:
    """A fresh twin holding one queued job, and an orchestrator with scripted rollouts
    (every one it makes is in the returned list)."""
    twin = MemoryJobQueue()
    job = _job(workdir, bundle, job_id, episodes=episodes, max_steps=10)
    await twin.enqueue_job(job)
    made: list[ScriptedRollouts] = []
    orch = Orchestrator(
        _settings(workdir, **(settings or {})), twin, twin, rollouts=scripted(made, **script)
    )
    return twin, job, orch, made


def _has_result(twin: MemoryJobQueue, job_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await twin.get_job_record(job_id)).has_result

    return check


async def test_job_completes_with_every_episode_reported_once(
    workdir: Path, bundles: dict[str, Path]
) -> None:
    twin, job, orch, made = await _job_on_twin(workdir, bundles["reach"], "job-twin", episodes=4)
    await orch.handle_job(job.job_id)
    msgs = await _outbox(twin, job.job_id)
    states = [m["state"] for m in msgs if m["type"] == "job_status"]
    assert states[0] == "starting" and "running" in states and states[-1] == "completed"
    assert [m["type"] for m in msgs][-1] == "eval_result" and msgs[-1]["state"] == "completed"
    episodes = [m for m in msgs if m["type"] == "episode"]
    assert [m["id"] for m in episodes] == [message_id(job.job_id, "episode", i) for i in range(4)]
    assert sum(m["type"] == "episode_steps" for m in msgs) == 4
    # completed comes after every episode's telemetry
    last_episode = max(i for i, m in enumerate(msgs) if m["type"] in ("episode", "episode_steps"))
    first_completed = min(i for i, m in enumerate(msgs) if m.get("state") == "completed")
    assert first_completed > last_episode
    assert made[0].closed
    record = await twin.get_job_record(job.job_id)
    assert record.state == JobState.COMPLETED and record.episodes_done == 4


async def test_the_compute_budget_is_reported_with_the_result(
    workdir: Path, bundles: dict[str, Path]
) -> None:
    """The benchmark's per-step allowance (50 ms) × the host's factor × the planned steps."""
    twin, job, orch, _ = await _job_on_twin(
        workdir, bundles["reach"], "job-twin-budget", episodes=4, settings={"host_factor": 2.5}
    )
    await orch.handle_job(job.job_id)
    [result] = [m for m in await _outbox(twin, job.job_id) if m["type"] == "eval_result"]
    compute = result["metrics"]["compute"]
    assert compute["host_factor"] == 2.5
    assert compute["step_allowance_s"] == pytest.approx(0.125)
    assert compute["budget_s"] == pytest.approx(0.125 * 4 * 10)  # 4 episodes × 10 steps
    assert compute["used_s"] == 0.0  # scripted episodes wait for no agent


async def test_deadline_ends_the_job_timed_out_promptly_and_keeps_finished_telemetry(
    workdir: Path, bundles: dict[str, Path]
) -> None:
    twin, job, orch, made = await _job_on_twin(
        workdir,
        bundles["slow"],
        "job-twin-deadline",
        episodes=20,
        settings={"job_deadline_s": 1.0},
        episode_s=0.2,
    )
    started = time.monotonic()
    await orch.handle_job(job.job_id)
    assert time.monotonic() - started < 3.0  # the rollouts were cancelled, not waited for
    msgs = await _outbox(twin, job.job_id)
    result = next(m for m in msgs if m["type"] == "eval_result")
    assert result["state"] == "timed_out" and result["failure_cause"] == "host_timeout"
    assert result["error"].startswith("deadline of 1s exceeded with the agent within its compute")
    statuses = [m["state"] for m in msgs if m["type"] == "job_status"]
    assert statuses[0] == "starting" and statuses[-1] == "timed_out"
    reported = [m["episode_index"] for m in msgs if m["type"] == "episode"]
    assert 0 < len(reported) < 20 and sorted(reported) == made[0].played
    assert made[0].closed and not orch.in_flight
    assert (await twin.get_job_record(job.job_id)).state == JobState.TIMED_OUT
    await orch.handle_job(job.job_id)  # delivered again: skipped
    assert [m["type"] for m in await _outbox(twin, job.job_id)].count("eval_result") == 1


async def test_infrastructure_failure_is_retried_through_the_queue_then_failed(
    workdir: Path, bundles: dict[str, Path]
) -> None:
    twin, job, orch, made = await _job_on_twin(
        workdir,
        bundles["reach"],
        "job-twin-infra",
        episodes=2,
        fail_with=RuntimeError("raylet died"),
    )
    await _consume_until(orch, twin, _has_result(twin, job.job_id), 30)
    assert len(made) == orch.timers.max_attempts == 3
    msgs = await _outbox(twin, job.job_id)
    assert [m["state"] for m in msgs if m["type"] == "job_status"].count("starting") == 3
    (result,) = [m for m in msgs if m["type"] == "eval_result"]
    assert result["state"] == "failed" and result["failure_cause"] == "internal"
    assert result["error"] == "infrastructure: raylet died"


@pytest.mark.parametrize("broken", [{0, 1, 2, 3}, {3}])
async def test_too_few_scored_episodes_fail_the_job_with_the_dominant_cause(
    workdir: Path, bundles: dict[str, Path], broken: set[int]
) -> None:
    """The coverage rule: below 90 % scored episodes (none, or 3 of 4) the job is an
    infrastructure failure, re-run through the queue, then failed with the cause."""

    def sandbox_down(spec: EpisodeSpec) -> EpisodeResult:
        if spec.index not in broken:
            return EpisodeResult.failed(spec, FailureCause.AGENT_CRASH, "policy bug")
        return EpisodeResult.failed(spec, FailureCause.SANDBOX_START, "bwrap: no user namespace")

    twin, job, orch, made = await _job_on_twin(
        workdir, bundles["reach"], "job-twin-unscored", episodes=4, outcome=sandbox_down
    )
    await _consume_until(orch, twin, _has_result(twin, job.job_id), 30)
    assert len(made) == orch.timers.max_attempts
    (result,) = [m for m in await _outbox(twin, job.job_id) if m["type"] == "eval_result"]
    assert result["state"] == "failed" and result["failure_cause"] == "sandbox_start"
    assert result["metrics"] is None
    assert f"only {4 - len(broken)} of 4 episodes scored (at least 90% needed)" in result["error"]


async def test_a_failing_outbox_is_retried_and_the_job_completes_with_all_telemetry(
    workdir: Path, bundles: dict[str, Path]
) -> None:
    twin, job, orch, _ = await _job_on_twin(
        workdir, bundles["reach"], "job-twin-flaky", episodes=6, episode_s=0.01
    )
    twin.fail(["append_outbox_many"], times=3)  # the telemetry writes fail three times
    await orch.handle_job(job.job_id)
    msgs = await _outbox(twin, job.job_id)
    assert msgs[-1]["type"] == "eval_result" and msgs[-1]["state"] == "completed"
    indices = [m["episode_index"] for m in msgs if m["type"] == "episode"]
    assert sorted(indices) == list(range(6))  # every episode, once


async def test_telemetry_the_outbox_refuses_never_lets_the_job_complete(
    workdir: Path, bundles: dict[str, Path]
) -> None:
    """The outbox keeps refusing the telemetry batches: each run gives up after the retry
    budget and re-queues the job; when its attempts are spent the job fails with the
    stated cause. At no point is it completed with its episodes missing."""
    twin, job, orch, made = await _job_on_twin(
        workdir,
        bundles["reach"],
        "job-twin-lost",
        episodes=4,
        settings={"telemetry_retry_s": 0.3},
    )
    twin.fail(["append_outbox_many"])  # batch writes fail; single statuses/results pass
    await _consume_until(orch, twin, _has_result(twin, job.job_id), 30)
    assert len(made) == 3  # retried through the queue, then given up
    msgs = await _outbox(twin, job.job_id)
    assert not [m for m in msgs if m["type"] in ("episode", "episode_steps")]
    assert "completed" not in [m.get("state") for m in msgs]
    (result,) = [m for m in msgs if m["type"] == "eval_result"]
    assert result["state"] == "failed" and result["failure_cause"] == "internal"
    assert result["error"].startswith("infrastructure: telemetry of job job-twin-lost not written")
    assert (await twin.get_job_record(job.job_id)).state == JobState.FAILED


async def test_shutdown_requeues_the_running_job_within_seconds(
    workdir: Path, bundles: dict[str, Path]
) -> None:
    twin, job, orch, made = await _job_on_twin(
        workdir, bundles["slow"], "job-twin-stop", episodes=20, episode_s=0.5
    )

    consumer = asyncio.create_task(
        twin.consume(orch.handle_job, concurrency=1, timers=orch.timers, stop=orch.stopping)
    )
    give_up = time.monotonic() + 30
    while not (made and made[0].played):
        assert time.monotonic() < give_up and not consumer.done()
        await asyncio.sleep(0.02)
    stopped = time.monotonic()
    orch.stop()
    await asyncio.wait_for(consumer, 10)
    assert time.monotonic() - stopped < 3.0 and made[0].closed
    assert (await twin.depths()).jobs_queued == 1  # back in the queue, not finished
    record = await twin.get_job_record(job.job_id)
    assert not record.has_result and not record.state.is_terminal

    # The next evaluator runs it to the end; the re-run's messages keep their ids.
    again = Orchestrator(_settings(workdir), twin, twin, rollouts=scripted())
    await _consume_until(again, twin, _has_result(twin, job.job_id), 30)
    msgs = await _outbox(twin, job.job_id)
    assert msgs[-1]["state"] == "completed"
    assert sorted(m["episode_index"] for m in msgs if m["type"] == "episode") == list(range(20))
    assert len({m["id"] for m in msgs}) == len(msgs)


async def test_a_job_handed_out_during_shutdown_is_left_to_the_next_evaluator(
    workdir: Path, bundles: dict[str, Path]
) -> None:
    twin, job, orch, made = await _job_on_twin(workdir, bundles["reach"], "job-late", episodes=2)
    orch.stop()
    with pytest.raises(RetryJob, match="shutting down"):
        await orch.handle_job(job.job_id)
    assert made == [] and not (await twin.get_job_record(job.job_id)).has_result


async def test_tampered_artifact_fails_without_running(
    workdir: Path, bundles: dict[str, Path]
) -> None:
    tmp_path = workdir
    jq = MemoryJobQueue()
    job = _job(tmp_path, bundles["reach"], "job-tamper", episodes=1, max_steps=10)
    bad = job.model_copy(update={"artifact": job.artifact.model_copy(update={"sha256": "0" * 64})})
    await jq.enqueue_job(bad)
    await Orchestrator(_settings(tmp_path), jq, jq, rollouts=scripted()).handle_job(bad.job_id)
    msgs = await _outbox(jq, bad.job_id)
    result = next(m for m in msgs if m["type"] == "eval_result")
    assert result["state"] == "failed" and result["error"].startswith("bundle:")
    assert result["failure_cause"] == "invalid_bundle" and result["metrics"] is None
    assert not any(m["type"] == "episode" for m in msgs)
    assert json.dumps(result)  # a plain JSON message


async def test_a_bundle_that_does_not_unpack_is_the_miners_fault_never_retried(
    workdir: Path, bundles: dict[str, Path]
) -> None:
    """An archive the backend's gate would refuse (a file and a directory of the same name)
    reached the validator anyway, e.g. published before the gate existed: it fails the job
    at once as the miner's ``invalid_bundle``, through the queue, without a second try."""

    archive = workdir / "conflict.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("kinitro.toml", "agent.py", "weights", "weights/w.bin"):
            data = (bundles["reach"] / name).read_bytes() if name.endswith(("py", "toml")) else b"x"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    job = _job(workdir, bundles["reach"], "job-conflict", episodes=1, max_steps=10)
    job = job.model_copy(
        update={"artifact": LocalRegistry(workdir / "artifacts").upload(archive, "miner/evil")}
    )
    twin = MemoryJobQueue()
    await twin.enqueue_job(job)
    made: list[ScriptedRollouts] = []
    orch = Orchestrator(_settings(workdir), twin, twin, rollouts=scripted(made))
    await _consume_until(orch, twin, _has_result(twin, job.job_id), 30)
    msgs = await _outbox(twin, job.job_id)
    (result,) = [m for m in msgs if m["type"] == "eval_result"]
    assert result["state"] == "failed" and result["failure_cause"] == "invalid_bundle"
    assert "needs 'weights' to be a directory" in result["error"]
    assert [m["state"] for m in msgs if m["type"] == "job_status"] == ["starting", "failed"]
    assert not made  # nothing was played


async def test_job_with_foreign_tasks_fails_before_fetching(
    workdir: Path, bundles: dict[str, Path]
) -> None:
    jq = MemoryJobQueue()
    job = _job(workdir, bundles["reach"], "job-foreign", episodes=1, max_steps=10)
    bad = job.model_copy(
        update={"benchmark": job.benchmark.model_copy(update={"tasks": ["push-v3"]})}
    )
    await jq.enqueue_job(bad)
    await Orchestrator(_settings(workdir), jq, jq, rollouts=scripted()).handle_job(bad.job_id)
    msgs = await _outbox(jq, bad.job_id)
    result = next(m for m in msgs if m["type"] == "eval_result")
    assert result["state"] == "failed" and "not part of benchmark" in result["error"]
    assert [m["state"] for m in msgs if m["type"] == "job_status"] == ["failed"]
    assert not (workdir / "bundles").exists()  # nothing was fetched
