"""Submissions: commitments seen on chain, their verification and supersession."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import page, rows, table, utcnow
from kinitro.backend.db.models import Submission

T = table(Submission)
LIVE = ("pending", "scheduled")


async def insert_submission(conn: AsyncConnection, values: dict[str, Any]) -> int | None:
    """Insert a commitment; None when (miner_hotkey, commitment_block) is known (dedup)."""
    stmt = (
        insert(T)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[T.c.miner_hotkey, T.c.commitment_block])
        .returning(T.c.id)
    )
    new_id = (await conn.execute(stmt)).scalar()
    return int(new_id) if new_id is not None else None


async def reject(conn: AsyncConnection, submission_id: int, reason: str, detail: str) -> None:
    await conn.execute(
        update(T)
        .where(T.c.id == submission_id)
        .values(
            status="rejected", rejection_reason=reason, rejection_detail=detail, updated_at=utcnow()
        )
    )


async def set_status(conn: AsyncConnection, submission_id: int, status: str, **extra: Any) -> None:
    await conn.execute(
        update(T).where(T.c.id == submission_id).values(status=status, updated_at=utcnow(), **extra)
    )


async def supersede_previous(
    conn: AsyncConnection, *, miner_hotkey: str, competition_id: str, newer_than_id: int
) -> list[int]:
    """Mark the miner's older live submissions in the competition superseded."""
    stmt = (
        update(T)
        .where(
            T.c.miner_hotkey == miner_hotkey,
            T.c.competition_id == competition_id,
            T.c.id < newer_than_id,
            T.c.status.in_(LIVE),
        )
        .values(status="superseded", updated_at=utcnow())
        .returning(T.c.id)
    )
    return list((await conn.execute(stmt)).scalars())


async def accepted_since(
    conn: AsyncConnection,
    *,
    miner_hotkey: str,
    competition_id: str,
    since: datetime,
    before_id: int,
) -> int:
    """The miner's submissions in the competition accepted for evaluation (scheduled,
    evaluated or since superseded) that were first seen at ``since`` or later, older than
    ``before_id`` (the submission being decided): the submission rate limit's count."""
    stmt = select(func.count()).where(
        T.c.miner_hotkey == miner_hotkey,
        T.c.competition_id == competition_id,
        T.c.id < before_id,
        T.c.status.in_(("scheduled", "evaluated", "superseded")),
        T.c.created_at >= since,
    )
    return int((await conn.execute(stmt)).scalar() or 0)


async def earliest_with_artifact(
    conn: AsyncConnection, *, competition_id: str, sha256: str
) -> int | None:
    """Id of the earliest non-rejected submission of the same artifact in the competition."""
    stmt = (
        select(T.c.id)
        .where(
            T.c.competition_id == competition_id,
            T.c.artifact_sha256 == sha256,
            T.c.status != "rejected",
        )
        .order_by(T.c.commitment_block, T.c.id)
        .limit(1)
    )
    return (await conn.execute(stmt)).scalar()


async def set_deterministic(conn: AsyncConnection, submission_id: int, value: bool) -> None:
    """Record whether the bundle is re-run audited (its manifest, or re-runs disagreed)."""
    await conn.execute(update(T).where(T.c.id == submission_id).values(deterministic=value))


async def get_submission(conn: AsyncConnection, submission_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(T).where(T.c.id == submission_id))).mappings().first()
    return dict(row) if row else None


async def list_submissions(
    conn: AsyncConnection,
    *,
    competition_id: str | None = None,
    miner_hotkey: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    conds = []
    if competition_id is not None:
        conds.append(T.c.competition_id == competition_id)
    if miner_hotkey is not None:
        conds.append(T.c.miner_hotkey == miner_hotkey)
    if status is not None:
        conds.append(T.c.status == status)
    q = select(T).where(and_(True, *conds))
    return await page(conn, q, limit=limit, offset=offset, order=[T.c.id.desc()])


async def recent(conn: AsyncConnection, limit: int = 20) -> list[dict[str, Any]]:
    return rows(await conn.execute(select(T).order_by(T.c.id.desc()).limit(limit)))


async def scorable(conn: AsyncConnection, competition_id: str) -> list[dict[str, Any]]:
    """Submissions of a competition that take part in scoring (scheduled or evaluated)."""
    stmt = select(T).where(
        T.c.competition_id == competition_id, T.c.status.in_(("scheduled", "evaluated"))
    )
    return rows(await conn.execute(stmt))


async def earliest_artifacts(
    conn: AsyncConnection, competition_id: str
) -> dict[str, tuple[int, int]]:
    """sha256 → (block, id) of the earliest non-rejected commitment of each artifact."""
    stmt = (
        select(T.c.artifact_sha256, T.c.commitment_block, T.c.id)
        .where(
            T.c.competition_id == competition_id,
            T.c.status != "rejected",
            T.c.artifact_sha256.is_not(None),
        )
        .order_by(T.c.commitment_block.desc(), T.c.id.desc())
    )
    # newest first, so the earliest commitment of each artifact is written last
    return {r[0]: (r[1], r[2]) for r in (await conn.execute(stmt)).all()}


async def counts_by_status(conn: AsyncConnection) -> dict[str, int]:
    stmt = select(T.c.status, func.count()).group_by(T.c.status)
    return {r[0]: int(r[1]) for r in (await conn.execute(stmt)).all()}
