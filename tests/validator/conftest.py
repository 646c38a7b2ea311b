"""Validator test fixtures: a JobQueue on a fresh migrated validator database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kinitro.jobqueue import JobQueue


@pytest.fixture
async def jq(validator_db_url: str) -> AsyncIterator[JobQueue]:
    queue = JobQueue.connect(validator_db_url, pool_size=2)
    try:
        yield queue
    finally:
        await queue.close()
