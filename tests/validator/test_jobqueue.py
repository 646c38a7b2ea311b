"""The validator database repository, against real PostgreSQL + pgqueuer tables."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from kinitro.core import migrations
from kinitro.core.db import create_engine
from kinitro.jobqueue import (
    EVAL_JOB_ENTRYPOINT,
    EnqueueOutcome,
    JobNotFoundError,
    JobQueue,
    UnsupportedMessageError,
)
from kinitro.jobqueue.models import PGQUEUER_TABLES, Base, include_object
from kinitro.protocol.common import JobState
from kinitro.protocol.validator_ws import Heartbeat

from .factories import (
    make_episode,
    make_job,
    make_result,
    make_status,
    make_steps,
    make_weights,
)


def _in_thread(fn: Any, *args: Any) -> Any:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


async def _fetch(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- schema


async def test_migrations_match_models_and_install_pgqueuer(empty_db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    _in_thread(migrations.upgrade, "validator", empty_db_url)
    engine = create_engine(empty_db_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"compare_type": True, "include_object": include_object}
                    ),
                    Base.metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == []
    tables = {r[0] for r in await _fetch(empty_db_url, "SELECT tablename FROM pg_tables")}
    assert PGQUEUER_TABLES | set(Base.metadata.tables) <= tables


async def test_upgrade_downgrade_roundtrip(empty_db_url: str) -> None:
    _in_thread(migrations.upgrade, "validator", empty_db_url)
    _in_thread(migrations.downgrade, "validator", empty_db_url)
    tables = {
        r[0]
        for r in await _fetch(
            empty_db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert tables <= {"alembic_version"}
    types = await _fetch(empty_db_url, "SELECT typname FROM pg_type WHERE typname LIKE 'pgqueuer%'")
    assert types == []
    _in_thread(migrations.upgrade, "validator", empty_db_url)
    assert _in_thread(migrations.current, "validator", empty_db_url) == "0001"


async def test_pgqueuer_accepts_the_installed_schema(validator_db_url: str) -> None:
    import asyncpg
    from pgqueuer.qm import QueueManager

    from kinitro.core.db import dsn

    conn = await asyncpg.connect(dsn(validator_db_url))
    try:
        from pgqueuer.adapters.persistence.queries import Queries

        await QueueManager(Queries.from_asyncpg_connection(conn)).verify_structure()
    finally:
        await conn.close()


# ---------------------------------------------------------------- jobs in


async def test_enqueue_is_atomic_and_recognises_duplicates(
    jq: JobQueue, validator_db_url: str
) -> None:
    job = make_job()
    assert await jq.enqueue_job(job) is EnqueueOutcome.CREATED
    assert await jq.enqueue_job(job) is EnqueueOutcome.DUPLICATE
    assert await jq.enqueue_job(job.model_copy(update={"id": "0" * 32})) is EnqueueOutcome.DUPLICATE
    rows = await _fetch(
        validator_db_url,
        "SELECT entrypoint, payload, dedupe_key, status::text FROM pgqueuer",
    )
    assert rows == [(EVAL_JOB_ENTRYPOINT, job.job_id.encode(), job.job_id, "queued")]
    assert await jq.get_job(job.job_id) == job
    record = await jq.get_job_record(job.job_id)
    assert record.state is JobState.QUEUED and record.attempt == 1
    depths = await jq.depths()
    assert depths.jobs_queued == 1 and depths.jobs_in_flight == 0


async def test_enqueue_rolls_back_when_the_queue_insert_fails(
    jq: JobQueue, validator_db_url: str
) -> None:
    # Sabotage pgqueuer's table so the second half of the transaction fails.
    engine = create_engine(validator_db_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE pgqueuer RENAME TO pgqueuer_gone"))
    job = make_job()
    with pytest.raises(Exception, match="pgqueuer"):
        await jq.enqueue_job(job)
    with pytest.raises(JobNotFoundError):
        await jq.get_job(job.job_id)
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE pgqueuer_gone RENAME TO pgqueuer"))
    await engine.dispose()
    assert await jq.enqueue_job(job) is EnqueueOutcome.CREATED


async def test_requeue_when_lost_from_queue_or_newer_attempt(
    jq: JobQueue, validator_db_url: str
) -> None:
    job = make_job()
    await jq.enqueue_job(job)
    # pgqueuer dropped the job (e.g. handler raised) while it never finished: requeue
    engine = create_engine(validator_db_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM pgqueuer"))
    assert await jq.enqueue_job(job) is EnqueueOutcome.REQUEUED
    # finished: the same attempt is a duplicate, a newer attempt runs again
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM pgqueuer"))
    await engine.dispose()
    assert await jq.append_outbox(make_result(job.job_id))
    assert await jq.enqueue_job(job) is EnqueueOutcome.DUPLICATE
    retry = make_job(job.job_id, attempt=2)
    assert await jq.enqueue_job(retry) is EnqueueOutcome.REQUEUED
    record = await jq.get_job_record(job.job_id)
    assert record.attempt == 2 and not record.has_result and record.state is JobState.QUEUED
    assert (await jq.depths()).jobs_queued == 1


async def test_unknown_job(jq: JobQueue) -> None:
    with pytest.raises(JobNotFoundError):
        await jq.get_job("nope")
    with pytest.raises(JobNotFoundError):
        await jq.append_outbox(make_episode("nope", 0))


# ---------------------------------------------------------------- outbox


async def test_outbox_order_ack_and_single_result(jq: JobQueue) -> None:
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


async def test_outbox_refuses_non_outbox_messages(jq: JobQueue) -> None:
    with pytest.raises(UnsupportedMessageError):
        await jq.append_outbox(Heartbeat(sent_at=make_status("j", 1).at))


async def test_concurrent_appends_keep_per_job_order(jq: JobQueue) -> None:
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


# ---------------------------------------------------------------- weights & status


async def test_weights_lifecycle(jq: JobQueue) -> None:
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
    assert await jq.next_pending_weights() is None
    # an older set arriving late (e.g. from the REST catch-up) is never set over a newer one
    assert await jq.record_weights(old.model_copy(update={"weights_id": "w-0"}))
    assert await jq.next_pending_weights() is None


async def test_status_snapshot(jq: JobQueue) -> None:
    await jq.set_connection("connected", backend_url="ws://b", uid=7, session_id="s1")
    await jq.enqueue_job(make_job())
    status = (await jq.status()).to_dict()
    assert status["connection"]["state"] == "connected" and status["connection"]["uid"] == 7
    assert status["depths"]["jobs_queued"] == 1
    assert status["last_weights"] is None


async def test_status_detail_with_nul_from_an_agent_is_stored(jq: JobQueue) -> None:
    """An agent's crash text may contain NUL; PostgreSQL text cannot, so it is replaced."""
    job = make_job()
    await jq.enqueue_job(job)
    sent = await jq.report_status(job.job_id, JobState.FAILED, detail="boom\x00bang")
    assert sent is not None
    record = await jq.get_job_record(job.job_id)
    assert record is not None
    assert record.detail == "boom\ufffdbang"
