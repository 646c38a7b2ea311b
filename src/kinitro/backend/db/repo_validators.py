"""Validators: connection state, last seen, throughput."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import rows, table, utcnow
from kinitro.backend.db.models import Result, Validator

V = table(Validator)
RES = table(Result)


async def connected(
    conn: AsyncConnection,
    *,
    hotkey: str,
    uid: int,
    session_id: str,
    replica_id: str,
    version: str,
    lite: bool,
    runtime: dict[str, Any] | None = None,
) -> None:
    now = utcnow()
    values = dict(
        uid=uid,
        connected=True,
        session_id=session_id,
        replica_id=replica_id,
        validator_version=version,
        runtime=runtime,
        lite=lite,
        connected_at=now,
        last_seen_at=now,
    )
    stmt = insert(V).values(hotkey=hotkey, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[V.c.hotkey], set_=values))


async def disconnected(conn: AsyncConnection, *, hotkey: str, session_id: str) -> bool:
    """Mark disconnected unless a newer session took over; True when changed."""
    stmt = (
        update(V)
        .where(V.c.hotkey == hotkey, V.c.session_id == session_id, V.c.connected.is_(True))
        .values(connected=False, last_seen_at=utcnow())
        .returning(V.c.hotkey)
    )
    return (await conn.execute(stmt)).scalar() is not None


async def seen(
    conn: AsyncConnection, *, hotkey: str, queue_depth: int | None, jobs_in_flight: int | None
) -> None:
    await conn.execute(
        update(V)
        .where(V.c.hotkey == hotkey)
        .values(last_seen_at=utcnow(), queue_depth=queue_depth, jobs_in_flight=jobs_in_flight)
    )


async def drop_stale(conn: AsyncConnection, older_than: datetime) -> list[str]:
    """Validators marked connected whose replica stopped refreshing them (crashed)."""
    stmt = (
        update(V)
        .where(V.c.connected.is_(True), V.c.last_seen_at < older_than)
        .values(connected=False)
        .returning(V.c.hotkey)
    )
    return list((await conn.execute(stmt)).scalars())


async def disconnect_replica(conn: AsyncConnection, replica_id: str) -> list[str]:
    stmt = (
        update(V)
        .where(V.c.connected.is_(True), V.c.replica_id == replica_id)
        .values(connected=False, last_seen_at=utcnow())
        .returning(V.c.hotkey)
    )
    return list((await conn.execute(stmt)).scalars())


async def evaluators(conn: AsyncConnection) -> list[str]:
    """Connected, non-lite validators in good standing (not suspended); ordering by load is
    left to the caller."""
    stmt = select(V.c.hotkey).where(
        V.c.connected.is_(True), V.c.lite.is_(False), in_good_standing()
    )
    return list((await conn.execute(stmt.order_by(V.c.hotkey))).scalars())


def in_good_standing() -> Any:
    """SQL condition: the validator (``validators`` row) is not suspended now."""
    return or_(V.c.suspended_until.is_(None), V.c.suspended_until <= func.now())


async def list_validators(
    conn: AsyncConnection, *, connected: bool | None = None
) -> list[dict[str, Any]]:
    done = (
        select(RES.c.validator_hotkey, func.count().label("jobs_done"))
        .group_by(RES.c.validator_hotkey)
        .subquery()
    )
    q = select(V, func.coalesce(done.c.jobs_done, 0).label("jobs_done")).outerjoin(
        done, done.c.validator_hotkey == V.c.hotkey
    )
    if connected is not None:
        q = q.where(V.c.connected.is_(connected))
    return rows(await conn.execute(q.order_by(V.c.uid, V.c.hotkey)))


async def count_connected(conn: AsyncConnection) -> int:
    return int(
        await conn.scalar(select(func.count()).select_from(V).where(V.c.connected.is_(True))) or 0
    )
