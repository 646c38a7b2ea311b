"""One conformance suite for the ``ChainClient`` port, run against both adapters:
``LocalChain`` (real service process) and ``BittensorChain`` (real bittensor 11 SDK on an
in-memory subtensor behind the SDK's ``Substrate`` seam).

Two kinds of subnet: plain weights (``harness``) and commit-reveal weights with a required
version key (``cr_harness``, the real chain's default)."""

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

from .conftest import COMMIT_SPACE, RATE_LIMIT, TEMPO, VERSION_KEY
from .fake_substrate import FakeDrand, FakeSubnet, FakeSubtensor


@dataclass
class Harness:
    chain: ChainClient
    register: Callable[[str, float], Awaitable[int]]  # wallet name, stake -> uid
    pass_rate_limits: Callable[[], Awaitable[None]]
    next_block: Callable[[], Awaitable[None]]
    next_epoch: Callable[[], Awaitable[None]]  # waits until a subnet epoch has just begun
    reach: Callable[[int], Awaitable[None]]  # waits until the chain is at that block


def local_epoch(netuid: int, block: int) -> int:
    """LocalChain's epochs: where (block + netuid + 1) % (tempo + 1) == 0."""
    return (block + netuid + 1) // (TEMPO + 1)


@pytest.fixture(params=["local", "bittensor"])
async def harness(
    request: pytest.FixtureRequest,
    netuid: int,
    wallets: dict[str, WalletInfo],
    wallet_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Harness]:
    """A subnet with plain weights."""
    async for h in _harness(
        request.param, request, netuid, wallets, wallet_path, monkeypatch, commit_reveal=False
    ):
        yield h


@pytest.fixture(params=["local", "bittensor"])
async def cr_harness(
    request: pytest.FixtureRequest,
    netuid: int,
    wallets: dict[str, WalletInfo],
    wallet_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Harness]:
    """A subnet with commit-reveal weights (one epoch) and weights version key 7."""
    async for h in _harness(
        request.param, request, netuid, wallets, wallet_path, monkeypatch, commit_reveal=True
    ):
        yield h


async def _harness(
    kind: str,
    request: pytest.FixtureRequest,
    netuid: int,
    wallets: dict[str, WalletInfo],
    wallet_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    commit_reveal: bool,
) -> AsyncIterator[Harness]:
    if kind == "local":
        proc: LocalChainProcess = request.getfixturevalue(
            "commit_reveal_proc" if commit_reveal else "chain_proc"
        )
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
            epoch = local_epoch(netuid, await local.block())
            await until(lambda b: local_epoch(netuid, b) > epoch)

        async def reach_local(block: int) -> None:
            await until(lambda b: b >= block)

        yield Harness(
            local, register_local, wait_local, next_block_local, next_epoch_local, reach_local
        )
        await local.close()
        return
    fake = FakeSubtensor(drand=FakeDrand().install(monkeypatch))
    fake.subnets.clear()
    fake.subnets[netuid] = FakeSubnet(
        tempo=TEMPO,
        max_space=COMMIT_SPACE,
        commit_reveal=commit_reveal,
        version_key=VERSION_KEY if commit_reveal else 0,
        weights_rate_limit=RATE_LIMIT,
    )
    chain = BittensorChain("local", netuid, substrate=fake)

    async def register_fake(name: str, stake: float) -> int:
        info = wallets[name]
        return fake.add_neuron(netuid, info.hotkey, info.coldkey, stake, permit=stake >= 100)

    async def wait_fake() -> None:
        fake.advance(RATE_LIMIT + 1)

    async def next_block_fake() -> None:
        fake.advance(1)

    async def next_epoch_fake() -> None:
        epoch = fake.epoch(fake.block, TEMPO)
        while fake.epoch(fake.block, TEMPO) == epoch:
            fake.advance(1)

    async def reach_fake(block: int) -> None:
        fake.advance(max(0, block - fake.block))

    yield Harness(chain, register_fake, wait_fake, next_block_fake, next_epoch_fake, reach_fake)
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


async def test_subnet_params(harness: Harness) -> None:
    params = await harness.chain.subnet_params()
    assert params.netuid == harness.chain.netuid
    assert (params.tempo, params.weights_rate_limit) == (TEMPO, RATE_LIMIT)
    assert (params.commit_reveal, params.weights_version_key) == (False, 0)


async def test_commit_reveal_weights(cr_harness: Harness, wallet_path: Path) -> None:
    """On a commit-reveal subnet (the real chain's default) a weight set is committed:
    the adapter returns the committed row and the block it reveals at, and the chain
    shows it only from then on."""
    harness = cr_harness
    params = await harness.chain.subnet_params()
    assert params.commit_reveal and params.reveal_period_epochs == 1
    assert params.weights_version_key == VERSION_KEY
    await harness.register("miner", 0)
    await harness.register("val", 500.0)
    val_key = load_hotkey("val", "default", wallet_path)
    with pytest.raises(InvalidWeightsError, match="version_key 3 is older than"):
        await harness.chain.set_weights(val_key, {0: 1.0}, version_key=3)
    await harness.next_epoch()  # a whole epoch ahead: the reveal is a tempo away
    record = await harness.chain.set_weights(val_key, {0: 0.75, 1: 0.25}, version_key=VERSION_KEY)
    assert record.committed and record.validator_uid == 1
    assert record.weights == {0: 65535, 1: 21845}
    assert record.block is not None and record.reveal_block is not None
    assert record.block < record.reveal_block <= record.block + TEMPO + 2
    assert await harness.chain.weights() == []  # committed, not revealed
    with pytest.raises(RateLimitedError):  # the rate limit counts commits
        await harness.chain.set_weights(val_key, {0: 1.0}, version_key=VERSION_KEY)
    await harness.reach(record.reveal_block)
    rows = await harness.chain.weights()
    assert [(r.validator_uid, r.weights) for r in rows] == [(1, {0: 65535, 1: 21845})]
    assert not rows[0].committed
    # a new commit is reported as what it is, not as the row already on chain
    await harness.next_epoch()
    newer = await harness.chain.set_weights(val_key, {1: 1.0}, version_key=VERSION_KEY)
    assert newer.committed and newer.weights == {1: 65535}
    assert [r.weights for r in await harness.chain.weights()] == [{0: 65535, 1: 21845}]
    assert newer.reveal_block is not None
    await harness.reach(newer.reveal_block)
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
