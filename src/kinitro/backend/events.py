"""Realtime events and validator wake-ups, fanned in through PostgreSQL NOTIFY.

State changes call :func:`emit` inside their transaction, so an event is delivered only
if (and when) the change commits, on every backend replica (each LISTENs, see
:mod:`.listener`). Callers pass the typed events of :mod:`kinitro.protocol.realtime`
(``emit(conn, JobStatusEvent(...))``), checked where they are built; here they are
serialised once and must stay small (NOTIFY allows < 8000 bytes).
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.protocol.errors import ProtocolError
from kinitro.protocol.realtime import LeaderboardUpdatedEvent, RealtimeEvent, dump_event

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "kinitro_events"
WAKE_CHANNEL = "kinitro_validator_wake"
NOTIFY_LIMIT = 7900


def encode_event(event: RealtimeEvent) -> str | None:
    """The event as JSON, or None (logged) when it is too big for NOTIFY (a leaderboard
    then goes without its entries: clients fetch them over REST)."""
    try:
        text = dump_event(event)
    except ProtocolError as exc:
        log.error("dropping %s event: %s", event.event_type, exc)
        return None
    size = len(text.encode())
    if size > NOTIFY_LIMIT and isinstance(event, LeaderboardUpdatedEvent) and event.entries:
        return encode_event(event.model_copy(update={"entries": []}))
    if size > NOTIFY_LIMIT:
        log.error("dropping %s event of %d bytes (NOTIFY limit)", event.event_type, size)
        return None
    return text


async def emit(conn: AsyncConnection, event: RealtimeEvent) -> None:
    """Publish a realtime event when the surrounding transaction commits."""
    text = encode_event(event)
    if text is not None:
        await conn.execute(select(func.pg_notify(EVENTS_CHANNEL, text)))


async def wake_validators(conn: AsyncConnection, hotkeys: set[str] | list[str]) -> None:
    """Ask whichever replica holds these validators' sockets to send what is pending."""
    for hotkey in sorted(set(hotkeys)):
        await conn.execute(select(func.pg_notify(WAKE_CHANNEL, hotkey)))
