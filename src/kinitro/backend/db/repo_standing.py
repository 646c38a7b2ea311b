"""Validator standing: strikes, suspensions, and the figures shown per validator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db import repo_audits
from kinitro.backend.db.common import page, rows, table, utcnow
from kinitro.backend.db.models import Result, Validator, ValidatorStrike

V = table(Validator)
K = table(ValidatorStrike)
RES = table(Result)


async def add_strike(
    conn: AsyncConnection, *, hotkey: str, job_id: str, reason: str, detail: str
) -> bool:
    """Record a strike; False when this validator was already struck for this job."""
    stmt = (
        insert(K)
        .values(validator_hotkey=hotkey, job_id=job_id, reason=reason, detail=detail[:4000])
        .on_conflict_do_nothing(index_elements=[K.c.validator_hotkey, K.c.job_id])
        .returning(K.c.id)
    )
    return (await conn.execute(stmt)).scalar() is not None


async def strike_of(conn: AsyncConnection, hotkey: str, job_id: str) -> dict[str, Any] | None:
    stmt = select(K).where(K.c.validator_hotkey == hotkey, K.c.job_id == job_id)
    row = (await conn.execute(stmt)).mappings().first()
    return dict(row) if row else None


def _counting() -> Any:
    """Strikes that count towards a suspension: since the validator's standing began."""
    return and_(
        K.c.validator_hotkey == V.c.hotkey,
        or_(V.c.standing_since.is_(None), K.c.created_at >= V.c.standing_since),
    )


async def counting_strikes(conn: AsyncConnection, hotkey: str) -> int:
    stmt = (
        select(func.count())
        .select_from(K.join(V, _counting()))
        .where(K.c.validator_hotkey == hotkey)
    )
    return int(await conn.scalar(stmt) or 0)


async def suspend(conn: AsyncConnection, hotkey: str, until: datetime) -> None:
    """Leave the validator out until ``until``; its strikes count afresh from then."""
    await conn.execute(
        update(V).where(V.c.hotkey == hotkey).values(suspended_until=until, standing_since=until)
    )


async def reinstate(conn: AsyncConnection, hotkey: str) -> dict[str, Any] | None:
    """End a suspension now (admin); strikes count afresh from now."""
    now = utcnow()
    stmt = (
        update(V)
        .where(V.c.hotkey == hotkey)
        .values(suspended_until=None, standing_since=now)
        .returning(V)
    )
    row = (await conn.execute(stmt)).mappings().first()
    return dict(row) if row else None


async def suspended_until(conn: AsyncConnection, hotkey: str) -> datetime | None:
    """When the validator's suspension ends, or None when it is in good standing."""
    stmt = select(V.c.suspended_until).where(V.c.hotkey == hotkey, V.c.suspended_until > utcnow())
    value = (await conn.execute(stmt)).scalar()
    return value if isinstance(value, datetime) else None


async def suspended_hotkeys(conn: AsyncConnection) -> set[str]:
    stmt = select(V.c.hotkey).where(V.c.suspended_until > utcnow())
    return set((await conn.execute(stmt)).scalars())


async def list_strikes(
    conn: AsyncConnection, *, hotkey: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    q = select(K)
    if hotkey is not None:
        q = q.where(K.c.validator_hotkey == hotkey)
    return await page(conn, q, limit=limit, offset=offset, order=[K.c.created_at.desc(), K.c.id])


async def standing(conn: AsyncConnection) -> dict[str, dict[str, Any]]:
    """Per validator: ``strikes`` (all), ``counting_strikes`` (towards a suspension),
    ``disagreement`` — the mean absolute distance of its completed results' success rates
    from their job's median, over jobs with at least two completed results — and its
    replay audits passed and failed (``audit_pass_rate``: passed over both)."""
    strikes = {
        r["hotkey"]: r
        for r in rows(
            await conn.execute(
                select(
                    V.c.hotkey,
                    func.count(K.c.id).label("strikes"),
                    func.count(K.c.id).filter(_counting()).label("counting_strikes"),
                )
                .select_from(V.outerjoin(K, K.c.validator_hotkey == V.c.hotkey))
                .group_by(V.c.hotkey)
            )
        )
    }
    done = RES.c.state == "completed"
    medians = (
        select(
            RES.c.job_id,
            func.percentile_cont(0.5).within_group(RES.c.success_rate).label("median"),
            func.count().label("n"),
        )
        .where(done, RES.c.success_rate.is_not(None))
        .group_by(RES.c.job_id)
        .subquery()
    )
    spread = (
        await conn.execute(
            select(
                RES.c.validator_hotkey,
                func.avg(func.abs(RES.c.success_rate - medians.c.median)).label("disagreement"),
                func.count().label("compared_jobs"),
            )
            .join(medians, medians.c.job_id == RES.c.job_id)
            .where(done, medians.c.n >= 2)
            .group_by(RES.c.validator_hotkey)
        )
    ).mappings()
    out: dict[str, dict[str, Any]] = {
        k: {"strikes": int(v["strikes"]), "counting_strikes": int(v["counting_strikes"])}
        for k, v in strikes.items()
    }
    for r in spread:
        entry = out.setdefault(r["validator_hotkey"], {"strikes": 0, "counting_strikes": 0})
        entry["disagreement"] = float(r["disagreement"])
        entry["compared_jobs"] = int(r["compared_jobs"])
    for hotkey, (passed, failed) in (await repo_audits.pass_counts(conn)).items():
        entry = out.setdefault(hotkey, {"strikes": 0, "counting_strikes": 0})
        entry["audits_passed"], entry["audits_failed"] = passed, failed
        entry["audit_pass_rate"] = passed / (passed + failed)
    return out
