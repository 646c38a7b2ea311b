"""LISTEN on the backend database: realtime events and validator wake-ups.

One dedicated asyncpg connection per replica; it reconnects after a loss (events
committed while it was down are not replayed: realtime clients are closed with 1012 so
they re-subscribe for a fresh snapshot, and validator sessions re-check pending work).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import asyncpg

from kinitro.backend.events import EVENTS_CHANNEL, WAKE_CHANNEL
from kinitro.core.db import dsn
from kinitro.protocol.realtime import CLOSE_RESUBSCRIBE

if TYPE_CHECKING:
    from kinitro.backend.state import BackendState

log = logging.getLogger(__name__)


class Listener:
    def __init__(self, state: BackendState) -> None:
        self.state = state
        self.ready = asyncio.Event()

    def _on_event(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.state.broadcaster.publish(payload)

    def _on_wake(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.state.hub.wake(payload)

    async def run(self) -> None:
        first = True
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(dsn(self.state.settings.database_url))
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(EVENTS_CHANNEL, self._on_event)
                await conn.add_listener(WAKE_CHANNEL, self._on_wake)
                self.ready.set()
                if not first:
                    # events committed while we were not listening are gone: validator
                    # sockets re-check their pending work, realtime clients are asked to
                    # re-subscribe (a fresh snapshot covers what they missed)
                    self.state.hub.wake_all()
                    self.state.broadcaster.close_all(CLOSE_RESUBSCRIBE, "event stream restarted")
                first = False
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), timeout=5.0)
                    except TimeoutError:
                        await conn.fetchval("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("LISTEN connection lost: %s; reconnecting", exc)
            finally:
                self.ready.clear()
                if conn is not None and not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(1.0)
