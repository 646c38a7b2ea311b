"""Alembic runner for the two schemas.

Two separate migration trees, two separate databases:

* ``backend``   → ``kinitro/backend/migrations``  (backend PostgreSQL)
* ``validator`` → ``kinitro/jobqueue/migrations`` (validator PostgreSQL, shared by the
  validator and its evaluators; includes pgqueuer's tables)

Each tree's ``env.py`` calls :func:`run_env` with its metadata. The trees are located
by path so that this module never imports a role package.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinitro.core.db import sqlalchemy_url
from kinitro.core.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import MetaData

_PKG_ROOT = Path(__file__).resolve().parent.parent
TREES: dict[str, Path] = {
    "backend": _PKG_ROOT / "backend" / "migrations",
    "validator": _PKG_ROOT / "jobqueue" / "migrations",
}


def alembic_config(role: str, url: str) -> Config:
    from alembic.config import Config

    try:
        location = TREES[role]
    except KeyError:
        raise ConfigError(
            f"unknown schema role {role!r}; expected one of {sorted(TREES)}"
        ) from None
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(location / "versions"))
    cfg.attributes["kinitro_url"] = sqlalchemy_url(url)
    return cfg


def upgrade(role: str, url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(role, url), revision)


def downgrade(role: str, url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(role, url), revision)


def current(role: str, url: str) -> str | None:
    return asyncio.run(_current_async(role, url))


async def _current_async(role: str, url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

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
    from alembic import context
    from sqlalchemy.ext.asyncio import create_async_engine

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
