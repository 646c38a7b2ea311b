"""Weights: set_weights from the backend → stored, acked, set on a real LocalChain service
(rate limit respected, last block recorded)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def chain_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalChainProcess]:
    data_dir = tmp_path_factory.mktemp("vchain") / "chain"
    with LocalChainProcess(
        data_dir,
        block_interval=BLOCK_S,
        weights_rate_limit=RATE_LIMIT,
        min_validator_stake=100.0,
    ) as proc:
        yield proc


@pytest.fixture
async def chain(
    chain_proc: LocalChainProcess, tmp_path: Path
) -> AsyncIterator[tuple[LocalChain, Path]]:
    for name in ("miner", "val"):
        create_wallet(name, "default", tmp_path)
    async with LocalChain(chain_proc.url, NETUID) as client:
        for name in ("miner", "val"):
            hot = load_hotkey(name, "default", tmp_path).ss58_address
            await client.register(load_coldkey(name, tmp_path), hot)
        await client.set_stake(
            load_coldkey("val", tmp_path), load_hotkey("val", "default", tmp_path).ss58_address, 500
        )
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
    from bittensor_wallet import Keypair

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
