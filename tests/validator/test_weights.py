"""Weights: set_weights from the backend → stored, acked, set on a real LocalChain service
(rate limit respected, last block recorded)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bittensor_wallet import Keypair

from kinitro.chain.local.client import LocalChain
from kinitro.chain.local.process import LocalChainProcess
from kinitro.chain.wallets import create_wallet, load_coldkey, load_hotkey
from kinitro.jobqueue import JobQueue
from kinitro.validator.node import ValidatorNode
from kinitro.validator.weights import WeightSetter

from .factories import make_weights
from .peer import ScriptedBackend
from .test_node import fast_settings

RATE_LIMIT = 5
BLOCK_S = 0.1
NETUID = 1


def _local_chain(
    factory: pytest.TempPathFactory, name: str, **rules: int
) -> Iterator[LocalChainProcess]:
    with LocalChainProcess(
        factory.mktemp(name) / "chain",
        block_interval=BLOCK_S,
        weights_rate_limit=RATE_LIMIT,
        min_validator_stake=100.0,
        **rules,
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def chain_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalChainProcess]:
    yield from _local_chain(tmp_path_factory, "vchain")


@contextlib.asynccontextmanager
async def _subnet(url: str, wallets: Path) -> AsyncIterator[LocalChain]:
    """A client of ``url`` with a miner and a validator (stake 500) registered."""
    for name in ("miner", "val"):
        create_wallet(name, "default", wallets)
    async with LocalChain(url, NETUID) as client:
        for name in ("miner", "val"):
            hot = load_hotkey(name, "default", wallets).ss58_address
            await client.register(load_coldkey(name, wallets), hot)
        val = load_hotkey("val", "default", wallets).ss58_address
        await client.set_stake(load_coldkey("val", wallets), val, 500)
        yield client


@pytest.fixture
async def chain(
    chain_proc: LocalChainProcess, tmp_path: Path
) -> AsyncIterator[tuple[LocalChain, Path]]:
    async with _subnet(chain_proc.url, tmp_path) as client:
        yield client, tmp_path


async def test_weights_are_set_on_chain_with_rate_limit(
    jq: JobQueue, validator_db_url: str, chain: tuple[LocalChain, Path]
) -> None:
    client, wallets = chain
    hotkey = load_hotkey("val", "default", wallets)
    uids = {n.hotkey: n.uid for n in (await client.metagraph()).neurons}
    miner_uid = uids[load_hotkey("miner", "default", wallets).ss58_address]
    val_uid = uids[hotkey.ss58_address]
    setter = WeightSetter(
        jq, client, hotkey, rate_limit_blocks=RATE_LIMIT, retry_s=0.1, block_time_s=BLOCK_S,
        idle_poll_s=0.2,
    )  # fmt: skip
    async with ScriptedBackend() as peer:
        settings = fast_settings(peer.url, validator_db_url)
        node = ValidatorNode(settings, jq, hotkey, weight_setter=setter)
        task = asyncio.create_task(node.run())
        try:
            first = make_weights("w-1", NETUID, {miner_uid: 1.0})
            await peer.push(first)
            await peer.wait_for(lambda: first.id not in peer.pending)  # acked
            for _ in range(100):
                last = await jq.last_weights_set()
                if last is not None:
                    break
                await asyncio.sleep(0.05)
            assert last is not None and last.weights_id == "w-1" and last.block is not None
            rows = {r.validator_uid: r for r in await client.weights()}
            assert rows[val_uid].weights == {miner_uid: 65535}
            # a second set right away waits out the rate limit instead of failing
            second = make_weights("w-2", NETUID, {miner_uid: 1.0, val_uid: 1.0})
            await peer.push(second)
            for _ in range(200):
                last = await jq.last_weights_set()
                if last is not None and last.weights_id == "w-2":
                    break
                await asyncio.sleep(0.05)
            assert last is not None and last.weights_id == "w-2"
            assert (
                last.block is not None
                and last.block - (first_block := rows[val_uid].block or 0) >= RATE_LIMIT
            )
            assert first_block > 0
            # weights for another subnet are refused, not set
            await peer.push(make_weights("w-x", NETUID + 5, {0: 1.0}))
            for _ in range(100):
                status = await jq.status()
                if status.pending_weights == 0:
                    break
                await asyncio.sleep(0.05)
            assert (await jq.last_weights_set()).weights_id == "w-2"  # type: ignore[union-attr]
        finally:
            node.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)


async def test_unreachable_chain_is_retried_not_given_up(jq: JobQueue) -> None:
    hotkey = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
    async with LocalChain("http://127.0.0.1:9", NETUID, timeout=0.5) as dead:
        setter = WeightSetter(jq, dead, hotkey, max_attempts=1, retry_s=0.0)
        await jq.record_weights(make_weights("w-1", NETUID, {0: 1.0}))
        for _ in range(3):
            entry = await jq.next_pending_weights()
            assert entry is not None  # still pending: an unreachable chain never gives up
            assert not await setter.set_one(entry)
        entry = await jq.next_pending_weights()
        assert entry is not None and entry.attempts == 3 and entry.error
        assert await jq.last_weights_set() is None


async def _setter_running(setter: WeightSetter) -> asyncio.Task[None]:
    return asyncio.create_task(setter.run())


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_unchanged_weights_are_set_again_never_faster_than_the_rate_limit(
    jq: JobQueue, chain: tuple[LocalChain, Path]
) -> None:
    """The backend sends weights once; the node keeps them fresh on chain, every
    interval, but the chain's rate limit (5 blocks) wins over a shorter interval (2)."""
    client, wallets = chain
    hotkey = load_hotkey("val", "default", wallets)
    miner = load_hotkey("miner", "default", wallets).ss58_address
    miner_uid = next(n.uid for n in (await client.metagraph()).neurons if n.hotkey == miner)
    setter = WeightSetter(
        jq, client, hotkey, interval_blocks=2, retry_s=0.1, block_time_s=BLOCK_S, idle_poll_s=0.05
    )
    assert await setter.rate_limit() == RATE_LIMIT  # read from the chain
    assert await setter.interval() == RATE_LIMIT
    await jq.record_weights(make_weights("w-1", NETUID, {miner_uid: 1.0}))
    task = await _setter_running(setter)
    blocks: list[int] = []
    try:
        for _ in range(400):
            last = await jq.last_weights_set()
            if last is not None and last.block is not None and last.block not in blocks:
                blocks.append(last.block)
            if len(blocks) >= 3:
                break
            await asyncio.sleep(0.02)
    finally:
        await _stop(task)
    assert len(blocks) >= 3, blocks
    assert all(b - a >= RATE_LIMIT for a, b in itertools.pairwise(blocks)), blocks
    last = await jq.last_weights_set()
    assert last is not None and last.weights_id == "w-1" and last.refreshes >= 2
    assert last.reveal_block is None  # plain weights: in effect at once


@pytest.fixture(scope="module")
def cr_chain_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalChainProcess]:
    yield from _local_chain(
        tmp_path_factory, "vchain-cr", tempo=10, commit_reveal_epochs=1, weights_version_key=3
    )


async def test_commit_reveal_weights_record_when_they_reveal(
    jq: JobQueue, cr_chain_proc: LocalChainProcess, tmp_path: Path
) -> None:
    async with _subnet(cr_chain_proc.url, tmp_path) as client:
        val = load_hotkey("val", "default", tmp_path)
        old = WeightSetter(jq, client, val, max_attempts=1, retry_s=0.0)  # version key 0
        await jq.record_weights(make_weights("w-0", NETUID, {0: 1.0}))
        entry = await jq.next_pending_weights()
        assert entry is not None and not await old.set_one(entry)
        # an old version key is not transient: those weights are given up, nothing set
        assert await jq.next_pending_weights() is None and await jq.last_weights_set() is None
        setter = WeightSetter(jq, client, val, version_key=3, retry_s=0.0, block_time_s=BLOCK_S)
        await jq.record_weights(make_weights("w-1", NETUID, {0: 1.0}))
        entry = await jq.next_pending_weights()
        assert entry is not None and entry.weights_id == "w-1"
        assert await setter.set_one(entry)
        last = await jq.last_weights_set()
        assert last is not None and last.block is not None and last.reveal_block is not None
        assert last.block < last.reveal_block <= last.block + 11
        assert [r.weights for r in await client.weights()] == []  # not revealed yet
        while await client.block() < last.reveal_block:  # noqa: ASYNC110 - a remote chain
            await asyncio.sleep(BLOCK_S)
        assert [r.weights for r in await client.weights()] == [{0: 65535}]
