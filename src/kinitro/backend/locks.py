"""Single-runner background tasks across replicas: PostgreSQL session advisory locks.

Each lock lives on its own (unpooled) asyncpg connection, so closing the connection, or
losing it when a replica dies, releases the lock for another replica to take.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

CHAIN_MONITOR = 7_301
SCHEDULER = 7_302
SCORING = 7_303
MIGRATIONS = 7_304
STATS = 7_305
AUDITS = 7_306


class LeaderLock:
    """Holds ``pg_try_advisory_lock(key)`` while this replica runs the task."""

    def __init__(self, dsn: str, key: int) -> None:
        self.dsn = dsn
        self.key = key
        self._conn: Any = None

    async def held(self) -> bool:
        """True when this replica runs the task now (acquires the lock if free)."""
        if self._conn is not None:
            try:
                await self._conn.fetchval("SELECT 1")
                return True
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
                log.warning("advisory lock %s lost with its connection", self.key)
                await self.release()
        conn = await asyncpg.connect(self.dsn)
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key)
        except BaseException:
            await conn.close()
            raise
        if got:
            self._conn = conn
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close(timeout=2)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()
