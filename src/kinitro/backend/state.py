"""What the app lifespan owns, shared by routes and background tasks."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kinitro.backend.metrics import Metrics

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from kinitro.backend.artifacts import ArtifactVerifier
    from kinitro.backend.realtime import Broadcaster
    from kinitro.backend.settings import Settings
    from kinitro.backend.validator_ws import ValidatorHub
    from kinitro.chain.models import Metagraph
    from kinitro.chain.port import ChainClient


@dataclass
class BackendState:
    settings: Settings
    engine: AsyncEngine
    chain: ChainClient
    verifier: ArtifactVerifier
    hub: ValidatorHub
    broadcaster: Broadcaster
    metrics: Metrics
    ingest_slots: asyncio.Semaphore
    scheduler_wake: asyncio.Event = field(default_factory=asyncio.Event)
    _metagraph: Metagraph | None = None
    _metagraph_at: float = 0.0

    async def metagraph(self, *, fresh: bool = False) -> Metagraph:
        """The chain metagraph, cached for ``metagraph_ttl_s``."""
        now = time.monotonic()
        if (
            fresh
            or self._metagraph is None
            or now - self._metagraph_at > self.settings.metagraph_ttl_s
        ):
            self._metagraph = await self.chain.metagraph()
            self._metagraph_at = now
        return self._metagraph
