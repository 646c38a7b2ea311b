"""Weights in PostgreSQL (``vq_weights``): stored before the ack, set by the weight setter.

The newest pending row wins (older pending rows are superseded), and nothing older than
what is already on chain is ever picked. The row set last is set again, unchanged, every
weights interval (``refreshes`` counts those; ``block`` and ``set_at`` are the latest).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from kinitro.jobqueue.models import WeightsRow
from kinitro.jobqueue.records import WeightsEntry

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from kinitro.protocol.validator_ws import SetWeights


class PostgresWeights:
    engine: AsyncEngine

    async def record_weights(self, message: SetWeights) -> bool:
        """Store a ``set_weights`` (before acking it). ``False`` if already known."""
        async with self.engine.begin() as conn:
            inserted = (
                await conn.execute(
                    pg_insert(WeightsRow)
                    .values(
                        weights_id=message.weights_id,
                        message_id=message.id,
                        netuid=message.netuid,
                        weights={str(k): float(v) for k, v in message.weights.items()},
                        computed_at=message.computed_at,
                    )
                    .on_conflict_do_nothing(index_elements=[WeightsRow.weights_id])
                    .returning(WeightsRow.weights_id)
                )
            ).scalar_one_or_none()
            return inserted is not None

    async def next_pending_weights(self) -> WeightsEntry | None:
        """The newest pending weights; older pending ones are marked ``superseded``."""
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(WeightsRow)
                    .where(WeightsRow.status == "pending")
                    .order_by(WeightsRow.computed_at.desc(), WeightsRow.received_at.desc())
                    .with_for_update()
                )
            ).all()
            if not rows:
                return None
            newest_set = (
                await conn.execute(
                    select(func.max(WeightsRow.computed_at)).where(WeightsRow.status == "set")
                )
            ).scalar()
            if newest_set is not None and rows[0].computed_at <= newest_set:
                older = [r.weights_id for r in rows]  # all older than what is on chain
                rows = []
            else:
                older = [r.weights_id for r in rows[1:]]
            if older:
                await conn.execute(
                    update(WeightsRow)
                    .where(WeightsRow.weights_id.in_(older))
                    .values(status="superseded")
                )
            return weights_entry(rows[0]) if rows else None

    async def weights_attempt_failed(self, weights_id: str, error: str, *, give_up: bool) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(WeightsRow)
                .where(WeightsRow.weights_id == weights_id)
                .values(
                    attempts=WeightsRow.attempts + 1,
                    error=error[:2000],
                    status="failed" if give_up else WeightsRow.status,
                )
            )

    async def weights_set(
        self, weights_id: str, block: int, *, reveal_block: int | None = None
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(WeightsRow)
                .where(WeightsRow.weights_id == weights_id)
                .values(
                    status="set",
                    block=block,
                    reveal_block=reveal_block,
                    set_at=func.now(),
                    attempts=WeightsRow.attempts + 1,
                    refreshes=WeightsRow.refreshes + case((WeightsRow.status == "set", 1), else_=0),
                    error=None,
                )
            )

    async def last_weights_set(self) -> WeightsEntry | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(WeightsRow)
                    .where(WeightsRow.status == "set")
                    .order_by(WeightsRow.set_at.desc())
                    .limit(1)
                )
            ).one_or_none()
        return None if row is None else weights_entry(row)


def weights_entry(row: Any) -> WeightsEntry:
    return WeightsEntry(
        weights_id=row.weights_id,
        netuid=row.netuid,
        weights={int(k): float(v) for k, v in row.weights.items()},
        computed_at=row.computed_at,
        received_at=row.received_at,
        status=row.status,
        attempts=row.attempts,
        block=row.block,
        set_at=row.set_at,
        error=row.error,
        reveal_block=row.reveal_block,
        refreshes=row.refreshes,
    )
