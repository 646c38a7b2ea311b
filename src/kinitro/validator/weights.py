"""Weight setter: puts the backend's ``set_weights`` on chain, and keeps them fresh.

Received weights are stored in ``vq_weights`` before they are acked, so a crash never
loses them. This task (independent of the WebSocket: it keeps working while the backend
is away) takes the newest pending row (older pending rows are superseded), waits out the
weights rate limit, sets the weights with the hotkey and records the block.

**Refresh.** The backend sends weights only when they change, but a validator whose
weights grow old on chain loses its say (and its dividends): when nothing new is pending,
the weights set last are set again, unchanged, every ``interval_blocks`` (default: the
subnet's tempo, so once per epoch), never sooner than the chain's rate limit.

**Subnet rules** come from the chain (:meth:`ChainClient.subnet_params`, re-read every
``params_ttl_s``): the rate limit is the larger of the chain's ``weights_rate_limit`` and
``rate_limit_blocks``; on a commit-reveal subnet (the real chain's default) a set is a
commit that the chain reveals later, and its ``reveal_block`` is recorded with it;
``version_key`` is sent with every set.

Transient chain failures are retried (an unreachable chain without limit); other errors
give up after ``max_attempts`` — except for a refresh, which only records the error: the
weights stay set and are tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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

    from kinitro.chain.models import SubnetParams
    from kinitro.chain.port import ChainClient

log = logging.getLogger(__name__)


@dataclass
class WeightSetter:
    jq: WeightsStore
    chain: ChainClient
    hotkey: Keypair
    rate_limit_blocks: int | None = None
    """At least this many blocks between two sets (None: the chain's rate limit only)."""
    interval_blocks: int | None = None
    """Set the last weights again after this many blocks (None: the subnet's tempo)."""
    version_key: int = 0
    max_attempts: int = 5
    retry_s: float = 5.0
    block_time_s: float = 12.0
    idle_poll_s: float = 5.0
    params_ttl_s: float = 300.0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _params: SubnetParams | None = None
    _params_at: float = float("-inf")

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
                if entry is not None:
                    await self.set_one(entry)
                    continue
                due = await self.refresh_due()
                if due is None:
                    await self._sleep_or_wake(self.idle_poll_s)
                    continue
                await self.set_one(due, refresh=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("weight setter iteration failed; retrying")
                await asyncio.sleep(self.retry_s)

    async def subnet_params(self) -> SubnetParams | None:
        """The subnet's rules (cached ``params_ttl_s``); None while the chain is away."""
        now = time.monotonic()
        if self._params is None or now - self._params_at > self.params_ttl_s:
            try:
                self._params = await self.chain.subnet_params()
                self._params_at = now
            except ChainError as exc:
                log.info("cannot read the subnet's parameters", extra={"error": str(exc)[:200]})
        return self._params

    async def rate_limit(self) -> int:
        params = await self.subnet_params()
        chain = params.weights_rate_limit if params is not None else 0
        return max(chain, self.rate_limit_blocks or 0)

    async def interval(self) -> int:
        """Blocks between two sets of unchanged weights: the tempo unless configured,
        never below the rate limit."""
        params = await self.subnet_params()
        wanted = self.interval_blocks
        if wanted is None:
            wanted = params.tempo if params is not None else 360
        return max(wanted, await self.rate_limit(), 1)

    async def refresh_due(self) -> WeightsEntry | None:
        """The weights set last, when they are due to be set again."""
        last = await self.jq.last_weights_set()
        if last is None or last.block is None or last.netuid != self.chain.netuid:
            return None
        try:
            current = await self.chain.block()
        except ChainError:
            return None
        return last if current - last.block >= await self.interval() else None

    async def _wait_rate_limit(self) -> None:
        last = await self.jq.last_weights_set()
        limit = await self.rate_limit()
        if last is None or last.block is None or limit <= 0:
            return
        while True:
            current = await self.chain.block()
            remaining = limit - (current - last.block)
            if remaining <= 0:
                return
            log.info("weights rate limit: waiting", extra={"blocks": remaining})
            await asyncio.sleep(min(remaining * self.block_time_s, 60.0))

    async def set_one(self, entry: WeightsEntry, *, refresh: bool = False) -> bool:
        """Try to set ``entry``; True when it is on chain. Records every attempt.

        An unreachable chain is retried without limit (with a capped backoff) until newer
        weights supersede these; other chain errors (no permit, unknown uids, …) give up
        after ``max_attempts``. A failed ``refresh`` never gives the weights up.
        """
        if entry.netuid != self.chain.netuid:
            await self.jq.weights_attempt_failed(
                entry.weights_id,
                f"weights are for netuid {entry.netuid}, this validator is on {self.chain.netuid}",
                give_up=not refresh,
            )
            return False
        try:
            await self._wait_rate_limit()
            record = await self.chain.set_weights(
                self.hotkey, entry.weights, version_key=self.version_key
            )
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
            give_up = not refresh and not transient and attempts >= self.max_attempts
            await self.jq.weights_attempt_failed(entry.weights_id, str(exc), give_up=give_up)
            log.warning(
                "setting weights failed",
                extra={
                    "weights_id": entry.weights_id,
                    "attempt": attempts,
                    "refresh": refresh,
                    "give_up": give_up,
                    "error": str(exc)[:300],
                },
            )
            if not give_up:
                await asyncio.sleep(self.retry_s * min(attempts, 12))
            return False
        await self.jq.weights_set(entry.weights_id, block, reveal_block=record.reveal_block)
        log.info(
            "weights refreshed on chain" if refresh else "weights set on chain",
            extra={
                "weights_id": entry.weights_id,
                "block": block,
                "reveal_block": record.reveal_block,
            },
        )
        return True
