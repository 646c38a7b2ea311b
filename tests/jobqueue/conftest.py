"""One harness per validator-database adapter: PostgreSQL (a fresh migrated database per
test) and the in-memory twin. The conformance suite runs every test against both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from kinitro.core.db import create_engine
from kinitro.jobqueue import JobQueue, MemoryJobQueue, ValidatorDatabase


@dataclass
class Harness:
    db: ValidatorDatabase
    lose_queue: Callable[[], Awaitable[None]]
    """The queue loses every entry (as when pgqueuer dropped a job whose handler failed),
    while the jobs' rows stay."""


@pytest.fixture(params=["postgres", "memory"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        twin = MemoryJobQueue()
        yield Harness(twin, twin.queries.clear_queue)
        return
    url: str = request.getfixturevalue("validator_db_url")
    jq = JobQueue.connect(url, pool_size=2)

    async def lose_queue() -> None:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM pgqueuer"))
        finally:
            await engine.dispose()

    try:
        yield Harness(jq, lose_queue)
    finally:
        await jq.close()
