"""Realtime events and validator wake-ups, fanned in through PostgreSQL NOTIFY.

State changes call :func:`emit` inside their transaction, so an event is delivered only
if (and when) the change commits, on every backend replica (each LISTENs, see
:mod:`.listener`). Payloads are the typed events of :mod:`kinitro.protocol.realtime`,
validated here, serialised once, small (NOTIFY allows < 8000 bytes).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.protocol.errors import ProtocolError
from kinitro.protocol.realtime import EVENT_ADAPTER, dump_event

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "kinitro_events"
WAKE_CHANNEL = "kinitro_validator_wake"
NOTIFY_LIMIT = 7900


def encode_event(event_type: str, payload: dict[str, Any]) -> str | None:
    """The event as JSON, or None (logged) when it does not fit the wire model."""
    try:
        event = EVENT_ADAPTER.validate_python(
            {"event_type": event_type, "at": datetime.now(UTC), **payload}
        )
        text = dump_event(event)
    except (ValidationError, ProtocolError) as exc:
        log.error("dropping malformed %s event: %s", event_type, exc)
        return None
    if len(text.encode()) > NOTIFY_LIMIT and event_type == "leaderboard_updated":
        return encode_event(event_type, {**payload, "entries": []})
    if len(text.encode()) > NOTIFY_LIMIT:
        log.error("dropping %s event of %d bytes (NOTIFY limit)", event_type, len(text))
        return None
    return text


async def emit(conn: AsyncConnection, event_type: str, **payload: Any) -> None:
    """Publish a realtime event when the surrounding transaction commits."""
    text = encode_event(event_type, payload)
    if text is not None:
        await conn.execute(select(func.pg_notify(EVENTS_CHANNEL, text)))


async def wake_validators(conn: AsyncConnection, hotkeys: set[str] | list[str]) -> None:
    """Ask whichever replica holds these validators' sockets to send what is pending."""
    for hotkey in sorted(set(hotkeys)):
        await conn.execute(select(func.pg_notify(WAKE_CHANNEL, hotkey)))
