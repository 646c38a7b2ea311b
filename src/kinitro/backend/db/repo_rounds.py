"""Evaluation rounds: opening, the on-chain commitment, the reveal, and the seal on what
derives from a round's secret (``kinitro.backend.rounds``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import page, rows, table
from kinitro.backend.db.models import Competition, EvalRound, Job

R = table(EvalRound)
C = table(Competition)
J = table(Job)


async def open_round(
    conn: AsyncConnection, competition_id: str, now: datetime
) -> dict[str, Any] | None:
    """The competition's round open at ``now``, if any. Locks the competition row until
    the transaction ends, so two writers never open two rounds at once."""
    await conn.execute(select(C.c.id).where(C.c.id == competition_id).with_for_update())
    stmt = (
        select(R)
        .where(
            R.c.competition_id == competition_id,
            R.c.starts_at <= now,
            R.c.ends_at > now,
            R.c.revealed_at.is_(None),
        )
        .order_by(R.c.starts_at.desc())
        .limit(1)
    )
    row = (await conn.execute(stmt)).mappings().first()
    return dict(row) if row else None


async def latest_end(conn: AsyncConnection, competition_id: str) -> datetime | None:
    """When the competition's latest round ends (a new one starts no earlier)."""
    stmt = select(R.c.ends_at).where(R.c.competition_id == competition_id)
    return await conn.scalar(stmt.order_by(R.c.ends_at.desc()).limit(1))


async def add_round(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    stmt = insert(R).values(**values).on_conflict_do_nothing(index_elements=[R.c.id])
    await conn.execute(stmt)
    row = (await conn.execute(select(R).where(R.c.id == values["id"]))).mappings().one()
    return dict(row)


async def to_commit(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Rounds not revealed whose commitment is not on chain yet, oldest first."""
    stmt = select(R).where(R.c.commit_block.is_(None), R.c.revealed_at.is_(None))
    return rows(await conn.execute(stmt.order_by(R.c.starts_at, R.c.id)))


async def set_committed(
    conn: AsyncConnection,
    round_id: str,
    *,
    commitment: str,
    hotkey: str,
    block: int,
    at: datetime,
) -> None:
    await conn.execute(
        update(R)
        .where(R.c.id == round_id)
        .values(commitment=commitment, committer_hotkey=hotkey, commit_block=block, committed_at=at)
    )


async def to_reveal(conn: AsyncConnection, now: datetime, *, committed_only: bool) -> list[str]:
    """Rounds that ended and are not revealed yet (with ``committed_only``, only those
    whose commitment is on chain)."""
    stmt = select(R.c.id).where(R.c.ends_at <= now, R.c.revealed_at.is_(None))
    if committed_only:
        stmt = stmt.where(R.c.commit_block.is_not(None))
    return [str(r) for r in (await conn.execute(stmt)).scalars()]


async def set_revealed(conn: AsyncConnection, round_id: str, secret_hex: str, at: datetime) -> None:
    await conn.execute(
        update(R).where(R.c.id == round_id).values(secret=secret_hex, revealed_at=at)
    )


async def get_round(conn: AsyncConnection, round_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(R).where(R.c.id == round_id))).mappings().first()
    return dict(row) if row else None


async def list_rounds(
    conn: AsyncConnection, *, competition_id: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    q = select(R)
    if competition_id is not None:
        q = q.where(R.c.competition_id == competition_id)
    return await page(conn, q, limit=limit, offset=offset, order=[R.c.starts_at.desc(), R.c.id])


async def seal_of_job(conn: AsyncConnection, job_id: str) -> tuple[bool, datetime | None]:
    """(whether the job exists, until when what derives from its round's secret is
    sealed: the round's end while it is not revealed, else None)."""
    seals = await seals_of_jobs(conn, [job_id])
    return job_id in seals, seals.get(job_id)


async def seals_of_jobs(
    conn: AsyncConnection, job_ids: Iterable[str]
) -> dict[str, datetime | None]:
    """:func:`seal_of_job` of several jobs: job id -> sealed until (None: revealed);
    unknown jobs are left out."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    stmt = select(J.c.id, R.c.ends_at, R.c.revealed_at).join(R, J.c.round_id == R.c.id)
    return {
        row.id: (row.ends_at if row.revealed_at is None else None)
        for row in await conn.execute(stmt.where(J.c.id.in_(ids)))
    }
