"""The subnet metagraph as the backend sees it: cached, fetched by one caller at a time.

A metagraph fetch is costly (on mainnet a full sync of the subnet), and a caller can need
a newer copy than the cached one — a validator signing in with a hotkey the cache does not
know, for instance one registered a second ago (or generated a second ago by an
attacker). So that nobody can turn sign-ins into fetches:

* fetches start at least ``metagraph_min_refresh_s`` apart, whoever asks;
* single flight: every caller that needs a fetch waits for the same next one
  (``fresh=True``: the next one to *start*, so it can see a registration that happened
  before the call); a thousand sign-ins with unknown hotkeys cost one fetch per interval
  and make each signer wait at most the interval;
* a failed fetch counts (the next one waits the interval too); its callers get the last
  good copy, or the error when there is none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kinitro.chain.models import Metagraph
    from kinitro.chain.port import ChainClient

log = logging.getLogger(__name__)


class MetagraphCache:
    def __init__(self, chain: ChainClient, *, ttl_s: float, min_refresh_s: float) -> None:
        self.chain = chain
        self.ttl_s = ttl_s
        self.min_refresh_s = min_refresh_s
        self.fetches = 0
        self._value: Metagraph | None = None
        self._started_at = float("-inf")  # when the last fetch started
        self._running: asyncio.Task[Metagraph] | None = None  # the fetch under way
        self._next: asyncio.Task[Metagraph] | None = None  # the next fetch (maybe delayed)

    async def get(self, *, fresh: bool = False) -> Metagraph:
        """The metagraph at most ``ttl_s`` old, or (``fresh``) fetched after this call."""
        age = time.monotonic() - self._started_at
        if not fresh and self._value is not None and age <= self.ttl_s:
            return self._value
        if self._next is None:
            self._next = asyncio.create_task(self._fetch(), name="metagraph-fetch")
            # its failure is logged in _fetch; when every waiter has gone (shutdown)
            # nobody else reads it, so it is marked read here
            self._next.add_done_callback(_mark_read)
        try:
            # shielded: a caller that gives up (a closed socket) never cancels the fetch
            # the others wait for
            return await asyncio.shield(self._next)
        except Exception:
            if self._value is None:
                raise
            return self._value

    async def _fetch(self) -> Metagraph:
        me = asyncio.current_task()
        try:
            if self._running is not None:  # one at a time, even when a fetch is slow
                await asyncio.wait([self._running])
            delay = self._started_at + self.min_refresh_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            # from now on, callers need the fetch after this one
            self._next, self._running = None, me
            self._started_at = time.monotonic()
            self.fetches += 1
            value = await self.chain.metagraph()
        except Exception as exc:
            log.warning("metagraph fetch failed: %s", exc)
            raise
        finally:
            if self._next is me:
                self._next = None
            if self._running is me:
                self._running = None
        self._value = value
        return value


def _mark_read(task: asyncio.Task[Metagraph]) -> None:
    if not task.cancelled():
        task.exception()
