"""PostgreSQL connection helpers shared by roles that own a database.

URLs are accepted in any of the usual spellings (``postgresql://``, ``postgres://``,
``postgresql+asyncpg://``) and normalised per driver: SQLAlchemy uses asyncpg,
pgqueuer and raw clients use a plain ``postgresql://`` DSN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


def sqlalchemy_url(url: str) -> str:
    """``postgresql+asyncpg://…`` form of ``url`` for SQLAlchemy."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def dsn(url: str) -> str:
    """Plain ``postgresql://…`` DSN of ``url`` for asyncpg / pgqueuer."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """``url`` with the password masked, for logs and error messages."""
    return make_url(url.replace("postgres://", "postgresql://", 1)).render_as_string(
        hide_password=True
    )


def create_engine(url: str, *, pool_size: int = 5, echo: bool = False) -> AsyncEngine:
    """An async SQLAlchemy engine on asyncpg with pre-ping and a bounded pool."""

    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        echo=echo,
    )
