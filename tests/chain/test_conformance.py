"""One conformance suite for the ``ChainClient`` port, run against both adapters:
``LocalChain`` (real service process) and ``BittensorChain`` (real bittensor 11 SDK on an
in-memory subtensor behind the SDK's ``Substrate`` seam)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from kinitro.chain.bittensor_chain import BittensorChain
from kinitro.chain.errors import (
    CommitmentTooLargeError,
    InvalidWeightsError,
    NotRegisteredError,
    PermissionDeniedError,
    RateLimitedError,
)
from kinitro.chain.local.client import LocalChain
from kinitro.chain.local.process import LocalChainProcess
from kinitro.chain.port import ChainClient
from kinitro.chain.signing import sign_message
from kinitro.chain.wallets import WalletInfo, load_coldkey, load_hotkey

from .conftest import RATE_LIMIT
from .fake_substrate import FakeSubtensor


@dataclass
class Harness:
    chain: ChainClient
    register: Callable[[str, float], Awaitable[int]]  # wallet name, stake -> uid
    pass_rate_limits: Callable[[], Awaitable[None]]


@pytest.fixture(params=["local", "bittensor"])
async def harness(
    request: pytest.FixtureRequest,
    netuid: int,
    wallets: dict[str, WalletInfo],
    wallet_path: Path,
) -> AsyncIterator[Harness]:
    if request.param == "local":
        proc: LocalChainProcess = request.getfixturevalue("chain_proc")
        local = LocalChain(proc.url, netuid)

        async def register_local(name: str, stake: float) -> int:
            cold = load_coldkey(name, wallet_path)
            neuron = await local.register(cold, wallets[name].hotkey)
            if stake:
                await local.set_stake(cold, wallets[name].hotkey, stake)
            return neuron.uid

        async def wait_local() -> None:
            target = await local.block() + RATE_LIMIT + 1
            while await local.block() < target:  # noqa: ASYNC110 - polling a remote chain
                await asyncio.sleep(0.05)

        yield Harness(local, register_local, wait_local)
        await local.close()
        return
    fake = FakeSubtensor()
    fake.subnets.clear()
    chain = BittensorChain("local", netuid, substrate=fake)

    async def register_fake(name: str, stake: float) -> int:
        info = wallets[name]
        return fake.add_neuron(netuid, info.hotkey, info.coldkey, stake, permit=stake >= 100)

    async def wait_fake() -> None:
        fake.advance(200)

    yield Harness(chain, register_fake, wait_fake)
    await chain.close()


async def test_block_and_metagraph(harness: Harness, wallets: dict[str, WalletInfo]) -> None:
    first = await harness.chain.block()
    assert isinstance(first, int) and first >= 0
    assert await harness.register("miner", 0) == 0
    assert await harness.register("val", 500.0) == 1
    graph = await harness.chain.metagraph()
    assert graph.netuid == harness.chain.netuid
    assert [(n.uid, n.hotkey, n.coldkey) for n in graph.neurons] == [
        (0, wallets["miner"].hotkey, wallets["miner"].coldkey),
        (1, wallets["val"].hotkey, wallets["val"].coldkey),
    ]
    assert graph.neurons[1].stake == pytest.approx(500.0)
    assert [n.validator_permit for n in graph.neurons] == [False, True]
    assert await harness.chain.block() >= first


async def test_commitments(harness: Harness, wallet_path: Path) -> None:
    await harness.register("miner", 0)
    key = load_hotkey("miner", "default", wallet_path)
    text = "k1:reach:l:alice/agent:xq83vEclSE8:" + "A" * 43
    record = await harness.chain.commit(key, text)
    assert (record.hotkey, record.uid, record.data) == (key.ss58_address, 0, text)
    listed = await harness.chain.commitments()
    assert [(c.hotkey, c.uid, c.block, c.data) for c in listed] == [
        (key.ss58_address, 0, record.block, text)
    ]
    with pytest.raises(RateLimitedError):
        await harness.chain.commit(key, "too soon")
    await harness.pass_rate_limits()
    newer = await harness.chain.commit(key, "x" * 128)
    assert newer.block > record.block
    assert [c.data for c in await harness.chain.commitments()] == ["x" * 128]
    with pytest.raises(CommitmentTooLargeError, match="128"):
        await harness.chain.commit(key, "x" * 129)


async def test_unknown_hotkey_is_refused(harness: Harness, wallet_path: Path) -> None:
    await harness.register("miner", 0)
    stranger = load_hotkey("other", "default", wallet_path)
    with pytest.raises(NotRegisteredError):
        await harness.chain.commit(stranger, "hello")
    with pytest.raises(NotRegisteredError):
        await harness.chain.set_weights(stranger, {0: 1.0})
    assert await harness.chain.commitments() == []


async def test_weights(harness: Harness, wallet_path: Path) -> None:
    await harness.register("miner", 0)
    await harness.register("val", 500.0)
    miner_key = load_hotkey("miner", "default", wallet_path)
    val_key = load_hotkey("val", "default", wallet_path)
    with pytest.raises(PermissionDeniedError):
        await harness.chain.set_weights(miner_key, {0: 1.0})
    with pytest.raises(InvalidWeightsError):
        await harness.chain.set_weights(val_key, {0: -1.0})
    record = await harness.chain.set_weights(val_key, {0: 0.75, 1: 0.25})
    assert record.validator_uid == 1 and record.weights == {0: 65535, 1: 21845}
    rows = await harness.chain.weights()
    assert [(r.validator_uid, r.validator_hotkey, r.weights) for r in rows] == [
        (1, val_key.ss58_address, {0: 65535, 1: 21845})
    ]
    assert rows[0].block is not None
    with pytest.raises(RateLimitedError):
        await harness.chain.set_weights(val_key, {0: 1.0})
    await harness.pass_rate_limits()
    await harness.chain.set_weights(val_key, {1: 1.0})
    assert [r.weights for r in await harness.chain.weights()] == [{1: 65535}]


async def test_signatures(
    harness: Harness, wallet_path: Path, wallets: dict[str, WalletInfo]
) -> None:
    key = load_hotkey("val", "default", wallet_path)
    message = f"kinitro-auth:00ff:{key.ss58_address}"
    signature = sign_message(key, message)
    assert harness.chain.verify_signature(key.ss58_address, message, signature)
    assert not harness.chain.verify_signature(wallets["other"].hotkey, message, signature)
    assert not harness.chain.verify_signature(key.ss58_address, message + "x", signature)
