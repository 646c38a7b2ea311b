"""Render queue: one video per episode, claimed by render workers with a lease."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import rows, table, utcnow
from kinitro.backend.db.models import Episode as EpisodeModel
from kinitro.backend.db.models import Job, Render

RD = table(Render)
EP = table(EpisodeModel)
J = table(Job)
WAITING = ("queued", "rendering")


async def of_episode(conn: AsyncConnection, episode_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(RD).where(RD.c.episode_id == episode_id))).mappings().first()
    return dict(row) if row else None


async def waiting(conn: AsyncConnection) -> int:
    """Renders queued or being rendered (the queue's length against its bound)."""
    return int(await conn.scalar(select(func.count()).where(RD.c.state.in_(WAITING))) or 0)


async def position(conn: AsyncConnection, render: dict[str, Any]) -> int:
    """How many queued renders a worker takes before this one."""
    if render["state"] != "queued":
        return 0
    earlier = and_(RD.c.origin == render["origin"], RD.c.id < render["id"])
    ahead = earlier if render["origin"] == "request" else or_(RD.c.origin == "request", earlier)
    stmt = select(func.count()).where(RD.c.state == "queued", ahead)
    return int(await conn.scalar(stmt) or 0)


async def enqueue(conn: AsyncConnection, episode_id: int, origin: str) -> dict[str, Any]:
    """Queue a render of the episode (nothing if one exists, unless it failed and this is
    a request: then it is queued again). Returns the render row."""
    stmt = (
        insert(RD)
        .values(episode_id=episode_id, state="queued", origin=origin)
        .on_conflict_do_nothing(index_elements=[RD.c.episode_id])
    )
    await conn.execute(stmt)
    if origin == "request":
        await conn.execute(
            update(RD)
            .where(RD.c.episode_id == episode_id, RD.c.state == "failed")
            .values(state="queued", origin="request", error=None, progress=0.0, worker=None)
        )
    found = await of_episode(conn, episode_id)
    assert found is not None
    return found


async def claim(conn: AsyncConnection, worker: str, lease_s: float) -> dict[str, Any] | None:
    """The next render for ``worker``: requests first, then oldest; a render whose lease
    expired (its worker died) is taken again. With the episode's action log key."""
    now = utcnow()
    pick = (
        select(RD.c.id)
        .where(
            or_(
                RD.c.state == "queued",
                and_(RD.c.state == "rendering", RD.c.lease_until < now),
            )
        )
        .order_by((RD.c.origin == "request").desc(), RD.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(RD)
        .where(RD.c.id == pick)
        .values(
            state="rendering",
            worker=worker,
            lease_until=now + timedelta(seconds=lease_s),
            progress=0.0,
        )
        .returning(RD)
    )
    row = (await conn.execute(stmt)).mappings().first()
    if row is None:
        return None
    episode = (await conn.execute(select(EP).where(EP.c.id == row["episode_id"]))).mappings().one()
    return {
        **dict(row),
        "job_id": episode["job_id"],
        "actions_ref": episode["actions_ref"],
        "steps": episode["steps"],
    }


async def report(
    conn: AsyncConnection, render_id: int, worker: str, lease_s: float, **values: Any
) -> dict[str, Any] | None:
    """Progress, done or failed from the worker holding the render; None if it does not
    (its lease expired and another worker took it)."""
    if values.get("state") in ("done", "failed"):
        values["finished_at"] = utcnow()
        values["lease_until"] = None
    else:
        values["lease_until"] = utcnow() + timedelta(seconds=lease_s)
    stmt = (
        update(RD)
        .where(RD.c.id == render_id, RD.c.worker == worker, RD.c.state == "rendering")
        .values(**values)
        .returning(RD)
    )
    row = (await conn.execute(stmt)).mappings().first()
    return dict(row) if row else None


async def episodes_to_film(
    conn: AsyncConnection, round_id: str, leader_ids: list[int], failed_sample: int
) -> list[int]:
    """Episodes of a revealed round worth a video: every episode of the leaders' jobs in
    that round, and the first ``failed_sample`` failed episodes of the others."""
    with_log = and_(J.c.round_id == round_id, EP.c.actions_ref.is_not(None))
    base = select(EP.c.id).join(J, J.c.id == EP.c.job_id)
    leaders = rows(
        await conn.execute(
            base.where(with_log, J.c.submission_id.in_(leader_ids)).order_by(EP.c.id)
        )
    )
    failed = rows(
        await conn.execute(
            base.where(with_log, ~J.c.submission_id.in_(leader_ids), EP.c.success.is_(False))
            .order_by(EP.c.id)
            .limit(failed_sample)
        )
    )
    return [r["id"] for r in leaders + failed]
