"""One conformance suite for the validator database, run against both adapters:
``JobQueue`` (real PostgreSQL + pgqueuer tables) and ``MemoryJobQueue`` (the twin)."""

from __future__ import annotations

import asyncio
import json

import pytest

from kinitro.jobqueue import (
    EnqueueOutcome,
    JobInbox,
    JobNotFoundError,
    JobSource,
    NodeStatus,
    OutboxFeed,
    QueueTimers,
    ResultSink,
    RetryJob,
    UnsupportedMessageError,
    ValidatorDatabase,
    WeightsStore,
)
from kinitro.protocol.common import JobState
from kinitro.protocol.validator_ws import Heartbeat
from validator.factories import (
    make_episode,
    make_job,
    make_result,
    make_status,
    make_steps,
    make_weights,
)

from .conftest import Harness


def test_adapter_implements_every_port(harness: Harness) -> None:
    for port in (JobSource, ResultSink, JobInbox, OutboxFeed, WeightsStore, NodeStatus):
        assert isinstance(harness.db, port), port
    assert isinstance(harness.db, ValidatorDatabase)


# ---------------------------------------------------------------- jobs in


async def test_enqueue_recognises_duplicates(harness: Harness) -> None:
    jq = harness.db
    job = make_job()
    assert await jq.enqueue_job(job) is EnqueueOutcome.CREATED
    assert await jq.enqueue_job(job) is EnqueueOutcome.DUPLICATE
    assert await jq.enqueue_job(job.model_copy(update={"id": "0" * 32})) is EnqueueOutcome.DUPLICATE
    assert await jq.get_job(job.job_id) == job
    record = await jq.get_job_record(job.job_id)
    assert record.state is JobState.QUEUED and record.attempt == 1
    depths = await jq.depths()
    assert depths.jobs_queued == 1 and depths.jobs_in_flight == 0
    assert [r.job_id for r in await jq.list_jobs(states=[JobState.QUEUED])] == [job.job_id]
    assert await jq.list_jobs(states=[JobState.RUNNING]) == []


async def test_requeue_when_lost_from_queue_or_newer_attempt(harness: Harness) -> None:
    jq = harness.db
    job = make_job()
    await jq.enqueue_job(job)
    # the queue dropped the job (e.g. handler raised) while it never finished: requeue
    await harness.lose_queue()
    assert await jq.enqueue_job(job) is EnqueueOutcome.REQUEUED
    # finished: the same attempt is a duplicate, a newer attempt runs again
    await harness.lose_queue()
    assert await jq.append_outbox(make_result(job.job_id))
    assert await jq.enqueue_job(job) is EnqueueOutcome.DUPLICATE
    retry = make_job(job.job_id, attempt=2)
    assert await jq.enqueue_job(retry) is EnqueueOutcome.REQUEUED
    record = await jq.get_job_record(job.job_id)
    assert record.attempt == 2 and not record.has_result and record.state is JobState.QUEUED
    assert (await jq.depths()).jobs_queued == 1


async def test_cancel_marks_the_job_and_drops_its_later_statuses(harness: Harness) -> None:
    jq = harness.db
    job, done = make_job(), make_job()
    await jq.enqueue_job(job)
    await jq.enqueue_job(done)
    assert await jq.report_status(job.job_id, JobState.RUNNING) is not None
    assert await jq.cancel_job(job.job_id, "superseded by submission 7")
    record = await jq.get_job_record(job.job_id)
    assert record.state is JobState.CANCELLED and record.detail == "superseded by submission 7"
    assert await jq.report_status(job.job_id, JobState.RUNNING) is None  # dropped
    assert not await jq.cancel_job(job.job_id, "again")  # already cancelled
    assert await jq.append_outbox(make_result(done.job_id))
    assert not await jq.cancel_job(done.job_id, "too late")  # finished: left as it is
    assert (await jq.get_job_record(done.job_id)).state is not JobState.CANCELLED
    assert not await jq.cancel_job("unknown-job", "never received")


async def test_unknown_job(harness: Harness) -> None:
    jq = harness.db
    with pytest.raises(JobNotFoundError):
        await jq.get_job("nope")
    with pytest.raises(JobNotFoundError):
        await jq.append_outbox(make_episode("nope", 0))


async def test_consumer_runs_retries_and_stops(harness: Harness) -> None:
    """The queue hands each job out once; ``RetryJob`` hands it out again, one attempt
    later; a job whose handler returns is gone; ``stop`` ends the consumer."""
    jq = harness.db
    a, b = make_job(), make_job()
    await jq.enqueue_job(a)
    await jq.enqueue_job(b)
    seen: list[tuple[str, int]] = []
    stop = asyncio.Event()

    async def handler(job_id: str, attempts: int) -> None:
        seen.append((job_id, attempts))
        if job_id == a.job_id and attempts < 2:
            raise RetryJob("try again")
        if len(seen) == 4:
            stop.set()

    await asyncio.wait_for(
        jq.consume(handler, concurrency=1, timers=QueueTimers.fast(), stop=stop), 30
    )
    assert sorted(seen) == sorted([(a.job_id, 0), (a.job_id, 1), (a.job_id, 2), (b.job_id, 0)])
    depths = await jq.depths()
    assert depths.jobs_queued == 0 and depths.jobs_in_flight == 0


# ---------------------------------------------------------------- outbox


async def test_outbox_order_ack_and_single_result(harness: Harness) -> None:
    jq = harness.db
    a, b = make_job(), make_job()
    await jq.enqueue_job(a)
    await jq.enqueue_job(b)
    s1 = await jq.report_status(a.job_id, JobState.STARTING, episodes_total=2)
    assert s1 is not None and s1.seq == 1
    assert await jq.append_outbox(make_episode(b.job_id, 0))
    assert await jq.append_outbox_many([make_episode(a.job_id, 0), make_steps(a.job_id, 0, 0)])
    s2 = await jq.report_status(a.job_id, JobState.RUNNING, episodes_done=1)
    assert s2 is not None and s2.seq == 2 and s2.episodes_total == 2
    result = make_result(a.job_id)
    assert await jq.append_outbox(result)
    assert not await jq.append_outbox(result)  # same id
    assert not await jq.append_outbox(make_result(a.job_id))  # second result of the job
    assert await jq.report_status(a.job_id, JobState.RUNNING) is None  # after terminal

    pending = await jq.pending_outbox()
    a_types = [e.type for e in pending if e.job_id == a.job_id]
    assert a_types == ["job_status", "episode", "episode_steps", "job_status", "eval_result"]
    assert [e.outbox_id for e in pending] == sorted(e.outbox_id for e in pending)
    record = await jq.get_job_record(a.job_id)
    assert record.state is JobState.COMPLETED and record.has_result and record.status_seq == 2

    first = pending[0]
    rest = await jq.pending_outbox(exclude=[first.message_id], limit=2)
    assert first.message_id not in {e.message_id for e in rest} and len(rest) == 2
    await jq.mark_sent([first.message_id])
    assert await jq.ack_outbox(first.message_id)
    assert not await jq.ack_outbox(first.message_id)
    assert await jq.reject_outbox(pending[1].message_id, error_code="invalid_message", detail="x")
    depths = await jq.depths()
    assert depths.outbox == len(pending) - 2 and depths.outbox_dead == 1
    (dead,) = await jq.dead_letters()
    assert dead.message_id == pending[1].message_id and dead.error_code == "invalid_message"
    assert await jq.requeue_dead_letters() == 1
    depths = await jq.depths()
    assert depths.outbox == len(pending) - 1 and depths.outbox_dead == 0
    assert (await jq.pending_outbox(limit=100))[-1].message_id == dead.message_id


async def test_outbox_refuses_non_outbox_messages(harness: Harness) -> None:
    with pytest.raises(UnsupportedMessageError):
        await harness.db.append_outbox(Heartbeat(sent_at=make_status("j", 1).at))  # type: ignore[arg-type]


async def test_a_batch_lands_whole_or_not_at_all(harness: Harness) -> None:
    jq = harness.db
    job = make_job()
    await jq.enqueue_job(job)
    with pytest.raises(JobNotFoundError):
        await jq.append_outbox_many([make_episode(job.job_id, 0), make_episode("nope", 1)])
    assert await jq.pending_outbox() == []
    twice = make_episode(job.job_id, 2)
    assert await jq.append_outbox_many([twice, twice, make_steps(job.job_id, 2, 0)]) == [
        True,
        False,
        True,
    ]


async def test_concurrent_appends_keep_per_job_order(harness: Harness) -> None:
    jq = harness.db
    job = make_job()
    await jq.enqueue_job(job)

    async def writer(offset: int) -> None:
        for i in range(10):
            await jq.append_outbox(make_episode(job.job_id, offset + i))

    await asyncio.gather(writer(0), writer(100))
    pending = await jq.pending_outbox(limit=100)
    indices = [json.loads(e.payload)["episode_index"] for e in pending]
    assert len(indices) == 20
    assert sorted(i for i in indices if i < 100) == [i for i in indices if i < 100]
    assert sorted(i for i in indices if i >= 100) == [i for i in indices if i >= 100]


async def test_listener_is_woken_by_appends(harness: Harness) -> None:
    jq = harness.db
    job = make_job()
    await jq.enqueue_job(job)
    woken = asyncio.Event()
    async with jq.outbox_listener(woken.set):
        await jq.append_outbox(make_episode(job.job_id, 0))
        await asyncio.wait_for(woken.wait(), 10)
        woken.clear()
        await jq.report_status(job.job_id, JobState.RUNNING)
        await asyncio.wait_for(woken.wait(), 10)


# ---------------------------------------------------------------- weights & status


async def test_weights_lifecycle(harness: Harness) -> None:
    jq = harness.db
    old = make_weights("w-1", 1, {0: 1.0})
    new = make_weights("w-2", 1, {0: 0.5, 1: 0.5})
    assert await jq.record_weights(old)
    assert await jq.record_weights(new)
    assert not await jq.record_weights(new)
    pending = await jq.next_pending_weights()
    assert pending is not None and pending.weights_id == "w-2"  # w-1 superseded
    await jq.weights_attempt_failed("w-2", "chain down", give_up=False)
    await jq.weights_set("w-2", 1234)
    last = await jq.last_weights_set()
    assert last is not None and last.block == 1234 and last.weights == {0: 0.5, 1: 0.5}
    assert last.attempts == 2 and last.error is None
    assert await jq.next_pending_weights() is None
    # an older set arriving late (e.g. from the REST catch-up) is never set over a newer one
    assert await jq.record_weights(old.model_copy(update={"weights_id": "w-0"}))
    assert await jq.next_pending_weights() is None
    assert (await jq.status()).pending_weights == 0


async def test_status_snapshot(harness: Harness) -> None:
    jq = harness.db
    await jq.set_connection("connected", backend_url="ws://b", uid=7, session_id="s1")
    await jq.set_connection("connected", last_error=None)  # keeps the other fields
    await jq.enqueue_job(make_job())
    status = (await jq.status()).to_dict()
    assert status["connection"]["state"] == "connected" and status["connection"]["uid"] == 7
    assert status["depths"]["jobs_queued"] == 1
    assert status["depths"]["jobs_by_state"] == {"queued": 1}
    assert status["last_weights"] is None
    with pytest.raises(Exception, match="unknown connection fields"):
        await jq.set_connection("connected", colour="blue")


async def test_status_detail_with_nul_from_an_agent_is_stored(harness: Harness) -> None:
    """An agent's crash text may contain NUL; PostgreSQL text cannot, so it is replaced."""
    jq = harness.db
    job = make_job()
    await jq.enqueue_job(job)
    sent = await jq.report_status(job.job_id, JobState.FAILED, detail="boom\x00bang")
    assert sent is not None
    record = await jq.get_job_record(job.job_id)
    assert record is not None
    assert record.detail == "boom\ufffdbang"
