"""The harness itself: a real server, fresh databases that are really separate."""

from __future__ import annotations

import asyncpg

from kinitro.core.db import dsn


async def test_empty_databases_are_separate(empty_db_url: str, make_empty_db) -> None:
    other = make_empty_db()
    assert other != empty_db_url
    a = await asyncpg.connect(dsn(empty_db_url))
    b = await asyncpg.connect(dsn(other))
    try:
        await a.execute("CREATE TABLE only_here (x int)")
        assert await a.fetchval("SELECT count(*) FROM pg_tables WHERE tablename='only_here'") == 1
        assert await b.fetchval("SELECT count(*) FROM pg_tables WHERE tablename='only_here'") == 0
        version = await a.fetchval("SHOW server_version_num")
        assert int(version) >= 140000
    finally:
        await a.close()
        await b.close()
