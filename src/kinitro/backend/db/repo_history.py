"""Time series for the dashboard's history charts, read from ``results`` (one row per job
and validator, so a fraction of ``episodes``' size) joined with ``jobs``.

Each series is one grouped query over a time window, bucketed in PostgreSQL with
``date_bin`` (PostgreSQL ≥ 14): the backend never loads the rows themselves. Agent re-run
audits (``jobs.audit_of_job``) are not evaluations and are left out; a result counts from
when the backend received it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import rows, table
from kinitro.backend.db.models import Job, Result

J = table(Job)
RES = table(Result)
ORIGIN = datetime.fromisoformat("2000-01-01T00:00:00+00:00")
"""Buckets start at whole multiples of their width from this instant (stable across calls)."""


def _scope(competition_id: str | None, since: datetime) -> ColumnElement[bool]:
    cond = and_(
        RES.c.received_at >= since,
        RES.c.episodes.is_not(None),
        RES.c.episodes > 0,
        J.c.audit_of_job.is_(None),
    )
    return cond if competition_id is None else and_(cond, J.c.competition_id == competition_id)


async def first_result_at(conn: AsyncConnection, competition_id: str | None) -> datetime | None:
    """When the first result (of the competition) arrived: where a default window starts."""
    stmt = select(func.min(RES.c.received_at)).select_from(RES.join(J, J.c.id == RES.c.job_id))
    if competition_id is not None:
        stmt = stmt.where(J.c.competition_id == competition_id)
    found = await conn.scalar(stmt)
    return found if isinstance(found, datetime) else None


def _bucket(bucket: timedelta) -> ColumnElement[datetime]:
    return func.date_bin(literal(bucket), RES.c.received_at, literal(ORIGIN))


async def success_series(
    conn: AsyncConnection, competition_id: str, since: datetime, bucket: timedelta
) -> list[dict[str, Any]]:
    """Per bucket (oldest first): ``at``, ``episodes``, ``successes`` over every result of
    the competition, and ``best_success_rate``: the best submission's rate in the bucket."""
    at = _bucket(bucket).label("at")
    per_submission = (
        select(
            at,
            J.c.submission_id,
            func.sum(RES.c.episodes).label("episodes"),
            func.sum(func.coalesce(RES.c.successes, 0)).label("successes"),
        )
        .select_from(RES.join(J, J.c.id == RES.c.job_id))
        .where(_scope(competition_id, since))
        .group_by(at, J.c.submission_id)
        .subquery()
    )
    q = per_submission.c
    stmt = (
        select(
            q.at,
            func.sum(q.episodes).label("episodes"),
            func.sum(q.successes).label("successes"),
            func.max(q.successes * 1.0 / q.episodes).label("best_success_rate"),
        )
        .group_by(q.at)
        .order_by(q.at)
    )
    return rows(await conn.execute(stmt))


async def throughput_series(
    conn: AsyncConnection, since: datetime, bucket: timedelta
) -> list[dict[str, Any]]:
    """Per validator and bucket (oldest first): ``jobs`` reported and their ``episodes``."""
    at = _bucket(bucket).label("at")
    stmt = (
        select(
            at,
            RES.c.validator_hotkey,
            func.count().label("jobs"),
            func.sum(RES.c.episodes).label("episodes"),
        )
        .select_from(RES.join(J, J.c.id == RES.c.job_id))
        .where(_scope(None, since))
        .group_by(at, RES.c.validator_hotkey)
        .order_by(at, RES.c.validator_hotkey)
    )
    return rows(await conn.execute(stmt))
