"""The validator sessions this replica holds, by hotkey.

A validator has at most one session across the backend: a newer one replaces the older
(closed with ``CLOSE_REPLACED``). Work reaches a session by a wake-up (the scheduler's
NOTIFY, see :mod:`.listener`), never by a send from another task: each session sends
what is pending for it from its own sender loop (:mod:`.validator_ws`).

The hub knows sessions only as :class:`Session` (something that can be woken and
closed), so it sits below the socket code and :class:`~.state.BackendState` can hold it
without importing the transport.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from kinitro.protocol.validator_ws import CLOSE_GOING_AWAY, CLOSE_REPLACED


class Session(Protocol):
    """One authenticated validator socket, as the hub sees it."""

    @property
    def wake(self) -> asyncio.Event:
        """Set to have the session send what is pending for its validator."""
        ...

    async def close(self, code: int, reason: str) -> None: ...


class ValidatorHub:
    """Sessions connected to this replica, by hotkey, and the sign-ins under way."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.signing_in = 0
        """Sockets between accept and the end of authentication (bounded by
        ``max_pending_auth``)."""

    def __len__(self) -> int:
        return len(self.sessions)

    async def register(self, hotkey: str, session: Session) -> None:
        """``session`` now serves ``hotkey``; an older session of it is closed."""
        previous = self.sessions.get(hotkey)
        if previous is not None and previous is not session:
            await previous.close(CLOSE_REPLACED, "replaced by a newer session")
        self.sessions[hotkey] = session

    def unregister(self, hotkey: str, session: Session) -> None:
        """``session`` ended (a newer session of the hotkey stays registered)."""
        if self.sessions.get(hotkey) is session:
            del self.sessions[hotkey]

    def wake(self, hotkey: str) -> None:
        session = self.sessions.get(hotkey)
        if session is not None:
            session.wake.set()

    def wake_all(self) -> None:
        for session in self.sessions.values():
            session.wake.set()

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            await session.close(CLOSE_GOING_AWAY, "backend shutting down")
