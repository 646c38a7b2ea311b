"""Weight setter: puts the backend's ``set_weights`` on chain.

Received weights are stored in ``vq_weights`` before they are acked, so a crash never
loses them. This task (independent of the WebSocket: it keeps working while the backend
is away) takes the newest pending row (older pending rows are superseded), waits out the
weights rate limit (``weights_rate_limit_blocks`` since the last block we set, and the
chain's own ``RateLimitedError.retry_in_blocks``), sets the weights with the hotkey and
records the block. Transient chain failures are retried up to ``weights_max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kinitro.chain.errors import (
    ChainError,
    ChainUnavailableError,
    RateLimitedError,
)
from kinitro.jobqueue import WeightsEntry, WeightsStore

if TYPE_CHECKING:
    from bittensor_wallet import Keypair

    from kinitro.chain.port import ChainClient

log = logging.getLogger(__name__)


@dataclass
class WeightSetter:
    jq: WeightsStore
    chain: ChainClient
    hotkey: Keypair
    rate_limit_blocks: int = 100
    max_attempts: int = 5
    retry_s: float = 5.0
    block_time_s: float = 12.0
    idle_poll_s: float = 5.0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self._wake.set()

    async def _sleep_or_wake(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def run(self) -> None:
        while True:
            try:
                entry = await self.jq.next_pending_weights()
                if entry is None:
                    await self._sleep_or_wake(self.idle_poll_s)
                    continue
                await self.set_one(entry)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("weight setter iteration failed; retrying")
                await asyncio.sleep(self.retry_s)

    async def _wait_rate_limit(self) -> None:
        last = await self.jq.last_weights_set()
        if last is None or last.block is None or self.rate_limit_blocks <= 0:
            return
        while True:
            current = await self.chain.block()
            remaining = self.rate_limit_blocks - (current - last.block)
            if remaining <= 0:
                return
            log.info("weights rate limit: waiting", extra={"blocks": remaining})
            await asyncio.sleep(min(remaining * self.block_time_s, 60.0))

    async def set_one(self, entry: WeightsEntry) -> bool:
        """Try to set ``entry``; True when it is on chain. Records every attempt.

        An unreachable chain is retried without limit (with a capped backoff) until newer
        weights supersede these; other chain errors (no permit, unknown uids, …) give up
        after ``max_attempts``.
        """
        if entry.netuid != self.chain.netuid:
            await self.jq.weights_attempt_failed(
                entry.weights_id,
                f"weights are for netuid {entry.netuid}, this validator is on {self.chain.netuid}",
                give_up=True,
            )
            return False
        try:
            await self._wait_rate_limit()
            record = await self.chain.set_weights(self.hotkey, entry.weights)
            block = record.block if record.block is not None else await self.chain.block()
        except RateLimitedError as exc:
            wait = max(1, exc.retry_in_blocks) * self.block_time_s
            log.info("chain rate-limited weights", extra={"retry_in_blocks": exc.retry_in_blocks})
            await self.jq.weights_attempt_failed(entry.weights_id, str(exc), give_up=False)
            await asyncio.sleep(min(wait, 60.0))
            return False
        except ChainError as exc:
            attempts = entry.attempts + 1
            transient = isinstance(exc, ChainUnavailableError)
            give_up = not transient and attempts >= self.max_attempts
            await self.jq.weights_attempt_failed(entry.weights_id, str(exc), give_up=give_up)
            log.warning(
                "setting weights failed",
                extra={
                    "weights_id": entry.weights_id,
                    "attempt": attempts,
                    "give_up": give_up,
                    "error": str(exc)[:300],
                },
            )
            if not give_up:
                await asyncio.sleep(self.retry_s * min(attempts, 12))
            return False
        await self.jq.weights_set(entry.weights_id, block)
        log.info("weights set on chain", extra={"weights_id": entry.weights_id, "block": block})
        return True
