"""What the app lifespan owns, shared by routes and background tasks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kinitro.backend.limits import ConnectionCaps, TokenBuckets
from kinitro.backend.metagraph import MetagraphCache
from kinitro.backend.metrics import Metrics
from kinitro.backend.snapshot import SnapshotBuilds
from kinitro.backend.validator_hub import ValidatorHub

if TYPE_CHECKING:
    from bittensor_wallet import Keypair
    from sqlalchemy.ext.asyncio import AsyncEngine

    from kinitro.backend.artifacts import ArtifactVerifier
    from kinitro.backend.broadcaster import Broadcaster
    from kinitro.backend.settings import Settings
    from kinitro.chain.models import Metagraph
    from kinitro.chain.port import ChainClient
    from kinitro.storage.media import MediaStore


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
    rest_buckets: TokenBuckets
    realtime_caps: ConnectionCaps
    round_key: Keypair | None = None
    """The hotkey that commits rounds on chain (None: a devnet without one)."""
    media: MediaStore | None = None
    """Where the evaluators put episode media (``media_url``; None: not configured)."""
    scheduler_wake: asyncio.Event = field(default_factory=asyncio.Event)
    render_worker_seen: float | None = None
    """``time.monotonic()`` of a render worker's last claim on this replica (or None)."""
    metagraphs: MetagraphCache = field(init=False)
    snapshots: SnapshotBuilds = field(init=False)

    def __post_init__(self) -> None:
        self.snapshots = SnapshotBuilds(self.engine, self.settings)
        self.metagraphs = MetagraphCache(
            self.chain,
            ttl_s=self.settings.metagraph_ttl_s,
            min_refresh_s=self.settings.metagraph_min_refresh_s,
        )

    async def metagraph(self, *, fresh: bool = False) -> Metagraph:
        """The chain metagraph, cached (see :mod:`.metagraph`)."""
        return await self.metagraphs.get(fresh=fresh)
