"""Chain test fixtures: a real LocalChain service process and wallets with real keys."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinitro.chain.local.process import LocalChainProcess
from kinitro.chain.wallets import WalletInfo, create_wallet

_NETUIDS = itertools.count(10)

RATE_LIMIT = 15  # blocks (1.5 s): short, yet longer than a loaded host takes between two calls
BLOCK_INTERVAL = 0.1
TEMPO = 40  # blocks per epoch (4 s): room for a few commitments within one epoch
COMMIT_SPACE = 300  # bytes per epoch: three small commitments (each uses >= 100)


VERSION_KEY = 7  # the commit-reveal chain's required weights version key


def _local_chain(
    factory: pytest.TempPathFactory, name: str, **rules: int
) -> Iterator[LocalChainProcess]:
    with LocalChainProcess(
        factory.mktemp(name) / "chain",
        block_interval=BLOCK_INTERVAL,
        tempo=TEMPO,
        commit_space=COMMIT_SPACE,
        weights_rate_limit=RATE_LIMIT,
        min_validator_stake=100.0,
        **rules,
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def chain_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalChainProcess]:
    yield from _local_chain(tmp_path_factory, "localchain")


@pytest.fixture(scope="module")
def commit_reveal_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalChainProcess]:
    """A LocalChain whose weights are committed and revealed one epoch later, like the
    real chain's default, with a required weights version key."""
    yield from _local_chain(
        tmp_path_factory, "localchain-cr", commit_reveal_epochs=1, weights_version_key=VERSION_KEY
    )


@pytest.fixture
def netuid() -> int:
    """A subnet of its own for each test (they share one chain process)."""
    return next(_NETUIDS)


@pytest.fixture(scope="module")
def wallet_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wallets")


@pytest.fixture(scope="module")
def wallets(wallet_path: Path) -> dict[str, WalletInfo]:
    return {name: create_wallet(name, "default", wallet_path) for name in ("miner", "val", "other")}
