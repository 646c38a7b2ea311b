"""Small helpers shared by the repository modules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Select, Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.protocol.common import ArtifactRef


def utcnow() -> datetime:
    return datetime.now(UTC)


def artifact_ref(row: Mapping[str, Any]) -> ArtifactRef:
    """A submission's artifact from its ``artifact_*`` columns (a submission row, or a job
    row joined with its submission)."""
    return ArtifactRef(
        registry=row["artifact_registry"],
        repo=row["artifact_repo"],
        revision=row["artifact_revision"],
        sha256=row["artifact_sha256"],
        size_bytes=row["artifact_size"] or 0,
    )


def rows(result: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in result.mappings().all()]


async def page(
    conn: AsyncConnection, query: Select[Any], *, limit: int, offset: int, order: Sequence[Any]
) -> tuple[list[dict[str, Any]], int]:
    """One page of ``query`` plus the total count of its rows."""
    total = await conn.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    result = await conn.execute(query.order_by(*order).limit(limit).offset(offset))
    return rows(result), int(total or 0)


def table(model: Any) -> Table:
    """The Core ``Table`` of a declarative model (typed for mypy)."""
    return cast(Table, model.__table__)
