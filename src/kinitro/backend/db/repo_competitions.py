"""Competitions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import null, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import rows, table, utcnow
from kinitro.backend.db.models import Competition

T = table(Competition)


async def list_competitions(
    conn: AsyncConnection, *, active: bool | None = None
) -> list[dict[str, Any]]:
    q = select(T)
    if active is not None:
        q = q.where(T.c.active.is_(active))
    return rows(await conn.execute(q.order_by(T.c.id)))


async def get_competition(conn: AsyncConnection, competition_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(T).where(T.c.id == competition_id))).mappings().first()
    return dict(row) if row else None


async def create_competition(
    conn: AsyncConnection, values: dict[str, Any]
) -> dict[str, Any] | None:
    """Insert; None when the id is already taken."""
    stmt = insert(T).values(**values).on_conflict_do_nothing(index_elements=[T.c.id]).returning(T)
    row = (await conn.execute(stmt)).mappings().first()
    return dict(row) if row else None


async def update_competition(
    conn: AsyncConnection, competition_id: str, values: dict[str, Any]
) -> dict[str, Any] | None:
    stmt = (
        update(T).where(T.c.id == competition_id).values(**values, updated_at=utcnow()).returning(T)
    )
    row = (await conn.execute(stmt)).mappings().first()
    return dict(row) if row else None


async def set_baselines(
    conn: AsyncConnection, competition_id: str, baselines: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Store (or, with ``None``, drop: SQL NULL) a competition's reference baselines."""
    value = null() if baselines is None else baselines
    return await update_competition(conn, competition_id, {"baselines": value})
