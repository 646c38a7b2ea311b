"""Telemetry: wire messages with stable ids, and the writer into the outbox (on the
validator database's in-memory twin), including an outbox that fails."""

from __future__ import annotations

import asyncio
import json

import pytest

from kinitro.evaluator.errors import TelemetryError
from kinitro.evaluator.results import EpisodeResult, StepSample
from kinitro.evaluator.telemetry import TelemetryWriter, episode_messages, message_id
from kinitro.jobqueue import MemoryJobQueue
from kinitro.protocol.common import FailureCause
from validator.factories import make_job


def _result(index: int, samples: int) -> EpisodeResult:
    return EpisodeResult(
        index=index,
        task="reach-v3",
        task_episode=index,
        seed=1,
        success=True,
        total_reward=2.0,
        steps=samples,
        steps_to_success=samples,
        terminated=True,
        actions_ref=f"episodes/j/{index:06d}/actions.kact",
        action_fingerprint="af1:4:4:AAAAAAAAAAA",
        samples=[
            StepSample(
                step=i,
                observation=[0.0] * 39,
                action=[0.0] * 4,
                reward=1.0,
                success=False,
                info={"near_object": 0.5},
            )
            for i in range(samples)
        ],
        failure_cause="agent_timeout" if index == 2 else None,
        failure_detail="act: no answer" if index == 2 else None,
    )


def test_episode_messages_are_valid_wire_messages() -> None:
    msgs = episode_messages("job-9", _result(2, 120), batch_size=50)
    assert [m.type for m in msgs] == ["episode", "episode_steps", "episode_steps", "episode_steps"]
    assert msgs[0].failure_cause == "agent_timeout" and msgs[0].actions_ref
    assert msgs[0].action_fingerprint == "af1:4:4:AAAAAAAAAAA"
    assert [m.batch_index for m in msgs[1:]] == [0, 1, 2]
    assert sum(len(m.samples) for m in msgs[1:]) == 120


def test_episode_messages_get_their_stable_ids_where_they_are_built() -> None:
    first = episode_messages("job-9", _result(2, 120), batch_size=50)
    again = episode_messages("job-9", _result(2, 120), batch_size=50)  # a re-run
    assert [m.id for m in first] == [m.id for m in again]
    assert first[0].id == message_id("job-9", "episode", 2)
    assert first[1].id == message_id("job-9", "steps", 2, 0)
    assert len({m.id for m in first}) == 4
    assert first[0].failure_cause is FailureCause.AGENT_TIMEOUT


async def _writer_job(twin: MemoryJobQueue) -> str:
    job = make_job()
    await twin.enqueue_job(job)
    return job.job_id


async def test_writer_never_blocks_the_producer_and_delivers_everything() -> None:
    twin = MemoryJobQueue()
    job_id = await _writer_job(twin)
    writer = TelemetryWriter(job_id, twin, episodes_total=20, batch_messages=4)
    running = asyncio.create_task(writer.run())
    for i in range(20):  # while the writer is busy: add only queues
        writer.add(_result(i, 3))
    writer.close()
    await asyncio.wait_for(running, 10)
    pending = [json.loads(e.payload) for e in await twin.pending_outbox(limit=1000)]
    episodes = [m for m in pending if m["type"] == "episode"]
    assert sorted(m["episode_index"] for m in episodes) == list(range(20))
    assert writer.messages == 40 and writer.delivered == 20
    progress = [m for m in pending if m["type"] == "job_status"]
    assert progress[-1]["episodes_done"] == 20 and progress[-1]["state"] == "running"
    # progress never counts an episode whose messages are not in the outbox yet
    for i, m in enumerate(pending):
        if m["type"] == "job_status":
            stored = sum(1 for earlier in pending[:i] if earlier["type"] == "episode")
            assert m["episodes_done"] <= stored


async def test_writer_retries_a_failing_outbox() -> None:
    twin = MemoryJobQueue()
    job_id = await _writer_job(twin)
    twin.fail(["append_outbox_many"], times=2)
    writer = TelemetryWriter(job_id, twin, episodes_total=1, batch_messages=100)
    writer.add(_result(0, 1))
    writer.close()
    await asyncio.wait_for(writer.run(), 10)
    kinds = [e.type for e in await twin.pending_outbox()]
    assert kinds == ["episode", "episode_steps", "job_status"]


async def test_writer_gives_up_with_a_stated_cause_and_drops_nothing_silently() -> None:
    twin = MemoryJobQueue()
    job_id = await _writer_job(twin)
    twin.fail(["append_outbox_many"])  # until recovered
    writer = TelemetryWriter(job_id, twin, episodes_total=2, retry_budget_s=0.5)
    writer.add(_result(0, 1))
    writer.add(_result(1, 1))
    writer.close()
    with pytest.raises(TelemetryError, match=r"not written for 0\.5s \(0 of 2 episodes"):
        await asyncio.wait_for(writer.run(), 10)
    assert writer.delivered == 0 and await twin.pending_outbox() == []
