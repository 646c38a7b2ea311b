"""A validator's presence, as the database and the dashboards know it.

A session records its validator connected once authenticated (with its version, lite
flag and evaluator runtime), seen at every heartbeat (queue depth, jobs in flight), and
disconnected when it ends — unless a newer session of the hotkey already took over
(``session_id`` decides). Connections and disconnections are realtime events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kinitro.backend import events
from kinitro.backend.db import repo_validators
from kinitro.backend.db.common import utcnow
from kinitro.protocol.realtime import ValidatorConnectedEvent, ValidatorDisconnectedEvent

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from kinitro.protocol.validator_ws import AuthResponse, Heartbeat


async def connected(
    conn: AsyncConnection,
    auth: AuthResponse,
    *,
    uid: int,
    session_id: str,
    replica_id: str,
) -> None:
    await repo_validators.connected(
        conn,
        hotkey=auth.hotkey,
        uid=uid,
        session_id=session_id,
        replica_id=replica_id,
        version=auth.validator_version,
        lite=auth.lite,
        runtime=auth.runtime.model_dump(mode="json") if auth.runtime else None,
    )
    await events.emit(
        conn,
        ValidatorConnectedEvent(at=utcnow(), validator_hotkey=auth.hotkey, uid=uid, lite=auth.lite),
    )


async def seen(conn: AsyncConnection, hotkey: str, heartbeat: Heartbeat) -> None:
    await repo_validators.seen(
        conn,
        hotkey=hotkey,
        queue_depth=heartbeat.queue_depth,
        jobs_in_flight=heartbeat.jobs_in_flight,
    )


async def disconnected(
    conn: AsyncConnection, hotkey: str, *, uid: int | None, session_id: str, reason: str
) -> None:
    if await repo_validators.disconnected(conn, hotkey=hotkey, session_id=session_id):
        await events.emit(
            conn,
            ValidatorDisconnectedEvent(
                at=utcnow(), validator_hotkey=hotkey, uid=uid, reason=reason[:4096]
            ),
        )
