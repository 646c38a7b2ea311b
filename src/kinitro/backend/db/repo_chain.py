"""Chain monitor progress."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import table, utcnow
from kinitro.backend.db.models import ChainScanState

T = table(ChainScanState)


async def last_block(conn: AsyncConnection, name: str) -> int | None:
    return (await conn.execute(select(T.c.last_block).where(T.c.name == name))).scalar()


async def save_progress(conn: AsyncConnection, name: str, netuid: int, block: int) -> None:
    stmt = insert(T).values(name=name, netuid=netuid, last_block=block, updated_at=utcnow())
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[T.c.name],
            set_={"last_block": block, "netuid": netuid, "updated_at": utcnow()},
        )
    )
