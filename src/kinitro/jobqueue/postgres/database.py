"""``JobQueue``: the validator database in PostgreSQL (engine, schema check, all parts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from kinitro.core.db import create_engine
from kinitro.jobqueue.errors import SchemaNotReadyError
from kinitro.jobqueue.models import JobRow
from kinitro.jobqueue.postgres.jobs import PostgresJobs
from kinitro.jobqueue.postgres.outbox import PostgresOutbox
from kinitro.jobqueue.postgres.reports import PostgresReports
from kinitro.jobqueue.postgres.status import PostgresStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


class JobQueue(PostgresJobs, PostgresReports, PostgresOutbox, PostgresStatus):
    """The validator database over one engine (weights come with the status part).
    One instance per process; async-safe.

    Build with ``JobQueue.connect(url)`` (owns its engine) or ``JobQueue(engine)``. Pass it
    where a narrower port is expected (:mod:`kinitro.jobqueue.ports`).
    """

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool = False) -> None:
        self.engine = engine
        self._owns_engine = owns_engine

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 5) -> Self:
        return cls(create_engine(url, pool_size=pool_size), owns_engine=True)

    async def close(self) -> None:
        if self._owns_engine:
            await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def check_schema(self) -> None:
        """Raise :class:`SchemaNotReadyError` unless the validator schema is migrated."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(func.count()).select_from(JobRow).limit(1))
                await conn.execute(text("SELECT 1 FROM pgqueuer LIMIT 1"))
        except (ProgrammingError, DBAPIError) as exc:
            if "database" in str(exc) and "does not exist" in str(exc):
                raise SchemaNotReadyError(
                    "the validator database does not exist: create it, then run "
                    "`kinitro db upgrade --role validator --url …`"
                ) from exc
            if "does not exist" in str(exc):
                raise SchemaNotReadyError(
                    "validator database is not migrated: run "
                    "`kinitro db upgrade --role validator --url …`"
                ) from exc
            raise
