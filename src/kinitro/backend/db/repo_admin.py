"""API keys (stored hashed) and validator auth nonces (single use)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import rows, table, utcnow
from kinitro.backend.db.models import ApiKey, AuthNonce

NonceState = Literal["ok", "unknown", "used", "expired"]
"""What consuming a sign-in nonce found (:func:`consume_nonce`)."""

K = table(ApiKey)
N = table(AuthNonce)


async def create_key(
    conn: AsyncConnection,
    *,
    name: str,
    prefix: str,
    key_hash: str,
    roles: list[str],
    expires_at: datetime | None,
) -> dict[str, Any]:
    stmt = (
        K.insert()
        .values(name=name, prefix=prefix, key_hash=key_hash, roles=roles, expires_at=expires_at)
        .returning(K.c.id, K.c.name, K.c.prefix, K.c.roles, K.c.expires_at, K.c.created_at)
    )
    return dict((await conn.execute(stmt)).mappings().one())


async def key_by_prefix(conn: AsyncConnection, prefix: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(K).where(K.c.prefix == prefix))).mappings().first()
    return dict(row) if row else None


async def key_used(conn: AsyncConnection, key_id: int) -> None:
    await conn.execute(update(K).where(K.c.id == key_id).values(last_used_at=utcnow()))


async def list_keys(conn: AsyncConnection) -> list[dict[str, Any]]:
    cols = [
        K.c.id,
        K.c.name,
        K.c.prefix,
        K.c.roles,
        K.c.expires_at,
        K.c.revoked_at,
        K.c.last_used_at,
        K.c.created_at,
    ]
    return rows(await conn.execute(select(*cols).order_by(K.c.id)))


async def revoke_key(conn: AsyncConnection, key_id: int) -> bool:
    stmt = (
        update(K)
        .where(K.c.id == key_id, K.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(K.c.id)
    )
    return (await conn.execute(stmt)).scalar() is not None


async def issue_nonce(conn: AsyncConnection, nonce: str, expires_at: datetime) -> None:
    await conn.execute(N.insert().values(nonce=nonce, expires_at=expires_at))


async def consume_nonce(conn: AsyncConnection, nonce: str) -> NonceState:
    """'ok', 'unknown', 'used' or 'expired'. A nonce can be consumed once."""
    now = utcnow()
    stmt = (
        update(N)
        .where(N.c.nonce == nonce, N.c.used_at.is_(None), N.c.expires_at > now)
        .values(used_at=now)
        .returning(N.c.nonce)
    )
    if (await conn.execute(stmt)).scalar() is not None:
        return "ok"
    row = (await conn.execute(select(N.c.used_at).where(N.c.nonce == nonce))).first()
    if row is None:
        return "unknown"
    return "used" if row.used_at is not None else "expired"


async def purge_nonces(conn: AsyncConnection, older_than: datetime) -> None:
    await conn.execute(N.delete().where(N.c.expires_at < older_than))
