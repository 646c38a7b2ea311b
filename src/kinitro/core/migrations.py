"""Alembic runner: upgrade, downgrade and read the revision of a migration tree.

Each role owns its tree and passes its folder (this module names none):

* the backend: ``kinitro.backend.db.models.MIGRATION_TREE`` (backend PostgreSQL);
* the validator node: ``kinitro.jobqueue.models.MIGRATION_TREE`` (validator PostgreSQL,
  shared by the validator and its evaluators; includes pgqueuer's tables).

Each tree's ``env.py`` calls :func:`run_env` with its metadata.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from kinitro.core.db import sqlalchemy_url
from kinitro.core.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy import MetaData


def alembic_config(folder: Path, url: str) -> Config:
    """The Alembic configuration of the migration tree in ``folder`` for database ``url``."""

    if not (folder / "env.py").is_file():
        raise ConfigError(f"{folder} is not a migration tree (no env.py)")
    cfg = Config()
    cfg.set_main_option("script_location", str(folder))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(folder / "versions"))
    cfg.attributes["kinitro_url"] = sqlalchemy_url(url)
    return cfg


def upgrade(folder: Path, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(folder, url), revision)


def downgrade(folder: Path, url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(folder, url), revision)


def current(url: str) -> str | None:
    """The database's revision (None: never migrated)."""
    return asyncio.run(_current_async(url))


async def _current_async(url: str) -> str | None:
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


def run_env(target_metadata: MetaData, **configure: Any) -> None:
    """Body of every tree's ``env.py``: run migrations online over asyncpg."""

    url = context.config.attributes.get("kinitro_url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise ConfigError("no database URL given to alembic")

    def do_run(connection: Any) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            transaction_per_migration=True,
            **configure,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(do_run)
                await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())
