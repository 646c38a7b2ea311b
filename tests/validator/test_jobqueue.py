"""What only the PostgreSQL adapter of the validator database has: migrations, pgqueuer's
tables, transactions. Everything both adapters share is in ``tests/jobqueue``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pgqueuer.adapters.persistence.queries import Queries
from pgqueuer.qm import QueueManager
from sqlalchemy import text

from kinitro.core import migrations
from kinitro.core.db import create_engine, dsn
from kinitro.jobqueue import (
    EVAL_JOB_ENTRYPOINT,
    EnqueueOutcome,
    JobNotFoundError,
    JobQueue,
)
from kinitro.jobqueue.models import MIGRATION_TREE, PGQUEUER_TABLES, Base, include_object
from kinitro.protocol.common import JobState

from .factories import (
    make_job,
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
    _in_thread(migrations.upgrade, MIGRATION_TREE, empty_db_url)
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
    _in_thread(migrations.upgrade, MIGRATION_TREE, empty_db_url)
    _in_thread(migrations.downgrade, MIGRATION_TREE, empty_db_url)
    tables = {
        r[0]
        for r in await _fetch(
            empty_db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert tables <= {"alembic_version"}
    types = await _fetch(empty_db_url, "SELECT typname FROM pg_type WHERE typname LIKE 'pgqueuer%'")
    assert types == []
    _in_thread(migrations.upgrade, MIGRATION_TREE, empty_db_url)
    assert _in_thread(migrations.current, empty_db_url) == "0002"


async def test_pgqueuer_accepts_the_installed_schema(validator_db_url: str) -> None:
    conn = await asyncpg.connect(dsn(validator_db_url))
    try:
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
