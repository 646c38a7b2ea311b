"""The ``ChainClient`` port: everything Kinitro needs from a chain.

Two adapters implement it and one conformance suite (``tests/chain/test_conformance.py``)
runs against both:

* :class:`kinitro.chain.local.client.LocalChain` — HTTP client of the embedded devnet
  chain service (``kinitro chain run``), the default;
* :class:`kinitro.chain.bittensor_chain.BittensorChain` — the bittensor 11 SDK.

A client is bound to one subnet (``netuid``). All calls are async. Writes are signed by
the hotkey keypair passed in (a ``bittensor_wallet.Keypair``, see
:mod:`kinitro.chain.wallets`); the chain enforces registration, the 128-byte commitment
limit, the commitment space and weights rate limits and u16 weight normalisation, and the
adapters raise the matching :mod:`kinitro.chain.errors` subclass. Commitments follow the
real chain's space rule: per subnet epoch (``tempo`` blocks) a hotkey may commit 3,100
bytes, each commitment using ``max(100, size)`` of them (``RateLimitedError`` beyond).

Weights follow the subnet's hyperparameters (:meth:`ChainClient.subnet_params`): a rate
limit per validator, a required ``version_key``, and — the real chain's default —
commit-reveal, where a weight set is committed now and revealed ``reveal_period_epochs``
epochs later (the returned :class:`WeightsRecord` says when: ``reveal_block``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from kinitro.chain.models import CommitmentRecord, Metagraph, SubnetParams, WeightsRecord

if TYPE_CHECKING:
    from bittensor_wallet import Keypair


@runtime_checkable
class ChainClient(Protocol):
    """Read chain state and submit hotkey-signed commitments and weights for one subnet."""

    @property
    def netuid(self) -> int:
        """The subnet this client reads and writes."""
        ...

    async def block(self) -> int:
        """Current block height."""
        ...

    async def metagraph(self) -> Metagraph:
        """Registered neurons (uid, hotkey, coldkey, stake, validator permit)."""
        ...

    async def commitments(self) -> list[CommitmentRecord]:
        """Every hotkey's current commitment on the subnet with its block, newest first."""
        ...

    async def commitment(self, hotkey: str, block: int | None = None) -> CommitmentRecord | None:
        """``hotkey``'s commitment as of ``block`` (default: the head): the latest one made
        at or before that block, with the block it was made in; None if it had none.

        A hotkey holds only its latest commitment, so this is how an older one is proven.
        On Bittensor, reading a block older than the node keeps state for needs an archive
        node (``ChainUnavailableError`` says so); LocalChain keeps every commitment."""
        ...

    async def commit(self, hotkey: Keypair, data: str) -> CommitmentRecord:
        """Write ``data`` (≤ 128 UTF-8 bytes) as ``hotkey``'s commitment; returns it with
        the block it was included in."""
        ...

    async def subnet_params(self) -> SubnetParams:
        """Tempo, weights rate limit, commit-reveal and required weights version key."""
        ...

    async def set_weights(
        self, hotkey: Keypair, weights: Mapping[int, float], *, version_key: int = 0
    ) -> WeightsRecord:
        """Set a validator's weights (relative values, normalised to u16 by the chain rules).

        On a commit-reveal subnet the weights are committed: the record carries the
        committed row, the commit ``block`` and the ``reveal_block`` from which
        :meth:`weights` shows them. A ``version_key`` below the subnet's required one is
        refused (``InvalidWeightsError``)."""
        ...

    async def weights(self) -> list[WeightsRecord]:
        """Every validator's current weight row (u16 values)."""
        ...

    def verify_signature(self, hotkey: str, message: bytes | str, signature: str | bytes) -> bool:
        """True when ``signature`` is ``hotkey``'s sr25519 signature over ``message``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
