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
    ChainError,
    ChainUnavailableError,
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

from .conftest import COMMIT_SPACE, RATE_LIMIT, TEMPO
from .fake_substrate import FakeSubnet, FakeSubtensor


@dataclass
class Harness:
    chain: ChainClient
    register: Callable[[str, float], Awaitable[int]]  # wallet name, stake -> uid
    pass_rate_limits: Callable[[], Awaitable[None]]
    next_block: Callable[[], Awaitable[None]]
    next_epoch: Callable[[], Awaitable[None]]  # waits until a subnet epoch has just begun


def epoch_of(netuid: int, block: int) -> int:
    return (block + netuid + 1) // (TEMPO + 1)


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

        async def until(done: Callable[[int], bool]) -> None:
            while not done(await local.block()):  # noqa: ASYNC110 - polling a remote chain
                await asyncio.sleep(0.02)

        async def wait_local() -> None:
            target = await local.block() + RATE_LIMIT + 1
            await until(lambda b: b >= target)

        async def next_block_local() -> None:
            target = await local.block() + 1
            await until(lambda b: b >= target)

        async def next_epoch_local() -> None:
            epoch = epoch_of(netuid, await local.block())
            await until(lambda b: epoch_of(netuid, b) > epoch)

        yield Harness(local, register_local, wait_local, next_block_local, next_epoch_local)
        await local.close()
        return
    fake = FakeSubtensor()
    fake.subnets.clear()
    fake.subnets[netuid] = FakeSubnet(tempo=TEMPO, max_space=COMMIT_SPACE)
    chain = BittensorChain("local", netuid, substrate=fake)

    async def register_fake(name: str, stake: float) -> int:
        info = wallets[name]
        return fake.add_neuron(netuid, info.hotkey, info.coldkey, stake, permit=stake >= 100)

    async def wait_fake() -> None:
        fake.advance(200)

    async def next_block_fake() -> None:
        fake.advance(1)

    async def next_epoch_fake() -> None:
        epoch = epoch_of(netuid, fake.block)
        while epoch_of(netuid, fake.block) == epoch:
            fake.advance(1)

    yield Harness(chain, register_fake, wait_fake, next_block_fake, next_epoch_fake)
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
    await harness.next_block()
    newer = await harness.chain.commit(key, "x" * 128)  # no fixed rate limit: space only
    assert newer.block > record.block
    assert [c.data for c in await harness.chain.commitments()] == ["x" * 128]
    with pytest.raises(CommitmentTooLargeError, match="128"):
        await harness.chain.commit(key, "x" * 129)


async def test_commitment_space_per_epoch(harness: Harness, wallet_path: Path) -> None:
    """Like subtensor's commitments pallet: per epoch a hotkey may commit a space budget
    (3,100 bytes on the real chain, 300 here), each commitment using max(100, size)."""
    await harness.register("miner", 0)
    key = load_hotkey("miner", "default", wallet_path)
    await harness.next_epoch()
    await harness.chain.commit(key, "x" * 128)  # uses 128
    await harness.chain.commit(key, "small")  # uses 100 (the minimum)
    with pytest.raises(RateLimitedError):
        await harness.chain.commit(key, "one more")  # 328 > 300
    assert [c.data for c in await harness.chain.commitments()] == ["small"]
    await harness.next_epoch()  # a new epoch, a new budget
    again = await harness.chain.commit(key, "next epoch")
    assert (await harness.chain.commitment(key.ss58_address)) == again


async def test_commitment_as_of_a_block(harness: Harness, wallet_path: Path) -> None:
    """A hotkey holds only its latest commitment; an older one is read as of its block."""
    await harness.register("miner", 0)
    key = load_hotkey("miner", "default", wallet_path)
    hotkey = key.ss58_address
    assert await harness.chain.commitment(hotkey) is None
    first = await harness.chain.commit(key, "kr1:round-1:first")
    await harness.next_block()
    second = await harness.chain.commit(key, "kr1:round-2:second")
    assert second.block > first.block
    for block, expected in (
        (first.block - 1, None),
        (first.block, first),
        (second.block - 1, first),
        (second.block, second),
        (None, second),
    ):
        found = await harness.chain.commitment(hotkey, block)
        got = None if found is None else (found.hotkey, found.block, found.data, found.uid)
        want = None if expected is None else (hotkey, expected.block, expected.data, 0)
        assert got == want, block
    assert [c.data for c in await harness.chain.commitments()] == [second.data]
    assert (
        await harness.chain.commitment(load_hotkey("other", "default", wallet_path).ss58_address)
        is None
    )
    with pytest.raises(ChainError, match="does not exist yet"):
        await harness.chain.commitment(hotkey, await harness.chain.block() + 1000)


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


async def test_bittensor_old_blocks_need_an_archive_node(wallets: dict[str, WalletInfo]) -> None:
    """A lite node prunes old state: the adapter says an archive node is needed."""
    fake = FakeSubtensor(state_pruning=256)
    info = wallets["miner"]
    fake.add_neuron(7, info.hotkey, info.coldkey)
    fake.subnets[7].history[info.hotkey] = [{"block": 50, "deposit": 0, "info": {"fields": []}}]
    fake.advance(1000)
    chain = BittensorChain("local", 7, substrate=fake)
    try:
        with pytest.raises(ChainUnavailableError, match="archive node"):
            await chain.commitment(info.hotkey, 60)
    finally:
        await chain.close()
