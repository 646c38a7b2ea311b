"""The node's connection row (``vq_connection``) and the queue depths, in PostgreSQL.

Written by ``kinitro validator run``; read by ``kinitro validator status`` (which works
with the node down: everything it shows is in the database).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from kinitro.jobqueue.errors import JobQueueError
from kinitro.jobqueue.models import ConnectionRow, JobRow, OutboxDeadRow, OutboxRow, WeightsRow
from kinitro.jobqueue.pgq import EVAL_JOB_ENTRYPOINT
from kinitro.jobqueue.postgres.weights import PostgresWeights
from kinitro.jobqueue.records import CONNECTION_FIELDS, ConnectionInfo, QueueDepths, ValidatorStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


class PostgresStatus(PostgresWeights):
    """The status view includes the last weights set (hence built on the weights part)."""

    engine: AsyncEngine

    async def set_connection(self, state: str, **fields: object) -> None:
        """Upsert the single connection row (``state`` + any :class:`ConnectionInfo` field)."""
        unknown = set(fields) - CONNECTION_FIELDS
        if unknown:
            raise JobQueueError(f"unknown connection fields {sorted(unknown)}")
        values = {"state": state, **fields, "pid": fields.get("pid", os.getpid())}
        async with self.engine.begin() as conn:
            stmt = pg_insert(ConnectionRow).values(id=1, **values)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[ConnectionRow.id], set_={**values, "updated_at": func.now()}
                )
            )

    async def connection(self) -> ConnectionInfo:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(ConnectionRow).where(ConnectionRow.id == 1))
            ).one_or_none()
        if row is None:
            return ConnectionInfo()
        return ConnectionInfo(
            **{name: getattr(row, name) for name in ConnectionInfo.__dataclass_fields__}
        )

    async def depths(self) -> QueueDepths:
        async with self.engine.connect() as conn:
            pgq = (
                await conn.execute(
                    text(
                        "SELECT status::text AS status, count(*) AS n FROM pgqueuer "
                        "WHERE entrypoint = :ep GROUP BY status"
                    ),
                    {"ep": EVAL_JOB_ENTRYPOINT},
                )
            ).all()
            counts = {r.status: r.n for r in pgq}
            outbox = (
                await conn.execute(select(func.count(), func.min(OutboxRow.created_at)))
            ).one()
            dead = (await conn.execute(select(func.count()).select_from(OutboxDeadRow))).scalar()
            by_state = (
                await conn.execute(select(JobRow.state, func.count()).group_by(JobRow.state))
            ).all()
        return QueueDepths(
            jobs_queued=counts.get("queued", 0),
            jobs_in_flight=counts.get("picked", 0),
            outbox=outbox[0],
            outbox_oldest_at=outbox[1],
            outbox_dead=dead or 0,
            jobs_by_state={state: n for state, n in by_state},
        )

    async def status(self) -> ValidatorStatus:
        async with self.engine.connect() as conn:
            pending = (
                await conn.execute(
                    select(func.count())
                    .select_from(WeightsRow)
                    .where(WeightsRow.status == "pending")
                )
            ).scalar()
        return ValidatorStatus(
            connection=await self.connection(),
            depths=await self.depths(),
            last_weights=await self.last_weights_set(),
            pending_weights=pending or 0,
        )
