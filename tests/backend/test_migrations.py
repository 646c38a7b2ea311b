"""Backend schema: the Alembic tree upgrades and downgrades cleanly and matches the models."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from kinitro.backend.db.models import MIGRATION_TREE, Base
from kinitro.core import migrations
from kinitro.core.db import create_engine

from .conftest import serve
from .conftest import test_settings as backend_settings


def _in_thread(fn: Any, *args: Any) -> Any:
    # alembic's env runs its own event loop: keep it off the test loop
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


async def _diff(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return {r[0] for r in rows}
    finally:
        await engine.dispose()


async def test_migrations_match_models(empty_db_url: str) -> None:
    _in_thread(migrations.upgrade, MIGRATION_TREE, empty_db_url)
    assert await _diff(empty_db_url) == []


async def test_upgrade_downgrade_roundtrip(empty_db_url: str) -> None:
    _in_thread(migrations.upgrade, MIGRATION_TREE, empty_db_url)
    assert set(Base.metadata.tables) <= await _tables(empty_db_url)
    _in_thread(migrations.downgrade, MIGRATION_TREE, empty_db_url)
    assert await _tables(empty_db_url) <= {"alembic_version"}
    _in_thread(migrations.upgrade, MIGRATION_TREE, empty_db_url)

    head = ScriptDirectory.from_config(
        migrations.alembic_config(MIGRATION_TREE, empty_db_url)
    ).get_current_head()
    assert _in_thread(migrations.current, empty_db_url) == head


async def test_replicas_starting_together_migrate_once(
    empty_db_url: str, net: Any, registry: Any
) -> None:
    settings = backend_settings(empty_db_url, net, registry, migrate_on_start=True)
    async with contextlib.AsyncExitStack() as stack:
        one, two = await asyncio.gather(
            stack.enter_async_context(serve(settings)),
            stack.enter_async_context(serve(settings)),
        )
        for backend in (one, two):
            async with httpx.AsyncClient(base_url=backend.url) as http:
                assert (await http.get("/health")).json()["db"] is True
    assert await _diff(empty_db_url) == []
