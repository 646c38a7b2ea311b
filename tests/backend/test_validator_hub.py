"""The replica's validator sessions (kinitro.backend.validator_hub, no socket)."""

from __future__ import annotations

import asyncio

from kinitro.backend.validator_hub import ValidatorHub
from kinitro.protocol.validator_ws import CLOSE_GOING_AWAY, CLOSE_REPLACED


class FakeSession:
    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.closed: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_a_newer_session_replaces_the_older_which_cannot_unregister_it() -> None:
    hub = ValidatorHub()
    old, new = FakeSession(), FakeSession()
    await hub.register("hk", old)
    await hub.register("hk", new)
    assert old.closed == (CLOSE_REPLACED, "replaced by a newer session")
    assert new.closed is None and hub.sessions["hk"] is new and len(hub) == 1
    hub.unregister("hk", old)  # the old session's cleanup runs after the takeover
    assert hub.sessions["hk"] is new
    hub.unregister("hk", new)
    assert len(hub) == 0


async def test_wake_one_or_all_and_close_all() -> None:
    hub = ValidatorHub()
    a, b = FakeSession(), FakeSession()
    await hub.register("a", a)
    await hub.register("b", b)
    hub.wake("a")
    hub.wake("unknown")  # a validator held by another replica: nothing to do here
    assert a.wake.is_set() and not b.wake.is_set()
    hub.wake_all()
    assert b.wake.is_set()
    await hub.close_all()
    assert a.closed == b.closed == (CLOSE_GOING_AWAY, "backend shutting down")
