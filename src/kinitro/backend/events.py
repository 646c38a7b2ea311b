"""Realtime events and validator wake-ups, fanned in through PostgreSQL NOTIFY.

State changes call :func:`emit` inside their transaction, so an event is delivered only
if (and when) the change commits, on every backend replica (each LISTENs, see
:mod:`.listener`). Payloads are small JSON objects (NOTIFY allows < 8000 bytes).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

EVENTS_CHANNEL = "kinitro_events"
WAKE_CHANNEL = "kinitro_validator_wake"

EVENT_TYPES = frozenset(
    {
        "submission_received",
        "submission_rejected",
        "job_created",
        "job_status",
        "episode_completed",
        "evaluation_completed",
        "leaderboard_updated",
        "weights_updated",
        "validator_connected",
        "validator_disconnected",
        "stats",
    }
)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def encode_event(event_type: str, payload: dict[str, Any]) -> str:
    body = {"event_type": event_type, "at": datetime.now(UTC).isoformat(), **payload}
    return json.dumps(body, default=_default, separators=(",", ":"))


async def emit(conn: AsyncConnection, event_type: str, **payload: Any) -> None:
    """Publish a realtime event when the surrounding transaction commits."""
    assert event_type in EVENT_TYPES, event_type
    await conn.execute(select(func.pg_notify(EVENTS_CHANNEL, encode_event(event_type, payload))))


async def wake_validators(conn: AsyncConnection, hotkeys: set[str] | list[str]) -> None:
    """Ask whichever replica holds these validators' sockets to send what is pending."""
    for hotkey in sorted(set(hotkeys)):
        await conn.execute(select(func.pg_notify(WAKE_CHANNEL, hotkey)))
