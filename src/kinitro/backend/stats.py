"""Counters for ``/api/v1/stats`` and the ``stats`` realtime event."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db import repo_ingest, repo_jobs, repo_submissions, repo_validators


async def collect_stats(conn: AsyncConnection) -> dict[str, Any]:
    return {
        "submissions": await repo_submissions.counts_by_status(conn),
        "jobs": await repo_jobs.counts_by_state(conn),
        "validators_connected": await repo_validators.count_connected(conn),
        **await repo_ingest.counts(conn),
    }
