"""LocalChain service + client: rules, signatures, persistence, several processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from kinitro.chain.errors import (
    AlreadyRegisteredError,
    BadNonceError,
    ChainUnavailableError,
    CommitmentTooLargeError,
    InvalidSignatureError,
    InvalidWeightsError,
    NotRegisteredError,
    PermissionDeniedError,
    RateLimitedError,
)
from kinitro.chain.local.client import LocalChain
from kinitro.chain.local.process import LocalChainProcess, free_port
from kinitro.chain.local.state import epoch_index, signing_payload
from kinitro.chain.signing import sign_message, verify_signature
from kinitro.chain.wallets import WalletInfo, load_coldkey, load_hotkey
from kinitro.chain.weights import normalize_u16

from .conftest import BLOCK_INTERVAL, TEMPO


async def _wait_blocks(chain: LocalChain, n: int) -> None:
    target = await chain.block() + n
    while await chain.block() < target:  # noqa: ASYNC110 - polling a remote chain
        await asyncio.sleep(BLOCK_INTERVAL / 2)


async def test_blocks_advance(chain_proc: LocalChainProcess, netuid: int) -> None:
    async with LocalChain(chain_proc.url, netuid) as chain:
        first = await chain.block()
        await asyncio.sleep(BLOCK_INTERVAL * 4)
        assert await chain.block() > first


async def test_register_twice_and_foreign_coldkey(
    chain_proc: LocalChainProcess, netuid: int, wallets: dict[str, WalletInfo], wallet_path: Path
) -> None:
    async with LocalChain(chain_proc.url, netuid) as chain:
        miner = wallets["miner"]
        neuron = await chain.register(load_coldkey("miner", wallet_path), miner.hotkey)
        assert neuron.uid == 0
        with pytest.raises(AlreadyRegisteredError):
            await chain.register(load_coldkey("miner", wallet_path), miner.hotkey)
        with pytest.raises(PermissionDeniedError, match="owned by coldkey"):
            await chain.set_stake(load_coldkey("other", wallet_path), miner.hotkey, 10)
        graph = await chain.metagraph()
        assert graph.by_hotkey(miner.hotkey) is not None
        assert graph.by_hotkey(miner.hotkey).coldkey == miner.coldkey  # type: ignore[union-attr]


async def test_unknown_hotkey_cannot_commit_or_set_weights(
    chain_proc: LocalChainProcess, netuid: int, wallet_path: Path
) -> None:
    async with LocalChain(chain_proc.url, netuid) as chain:
        with pytest.raises(NotRegisteredError, match="not registered"):
            await chain.commit(load_hotkey("other", "default", wallet_path), "hello")
        with pytest.raises(NotRegisteredError):
            await chain.set_weights(load_hotkey("other", "default", wallet_path), {0: 1.0})


async def test_commitment_limit_and_space(
    chain_proc: LocalChainProcess, netuid: int, wallets: dict[str, WalletInfo], wallet_path: Path
) -> None:
    async with LocalChain(chain_proc.url, netuid) as chain:
        await chain.register(load_coldkey("miner", wallet_path), wallets["miner"].hotkey)
        hotkey = load_hotkey("miner", "default", wallet_path)
        with pytest.raises(CommitmentTooLargeError, match="129 bytes; the chain limit is 128"):
            await chain.commit(hotkey, "x" * 129)
        head = await chain.block()
        epoch = epoch_index(netuid, head, TEMPO)
        while epoch_index(netuid, head, TEMPO) == epoch:  # start at the beginning of an epoch
            await asyncio.sleep(BLOCK_INTERVAL / 2)
            head = await chain.block()
        record = await chain.commit(hotkey, "x" * 128)
        assert record.data == "x" * 128 and record.uid == 0
        await chain.commit(hotkey, "second")  # 128 + 100 of the 300 bytes
        with pytest.raises(RateLimitedError, match="228 of its 300 bytes") as info:
            await chain.commit(hotkey, "third")
        head = await chain.block()
        assert epoch_index(netuid, head + info.value.retry_in_blocks, TEMPO) > epoch_index(
            netuid, head, TEMPO
        )
        await _wait_blocks(chain, info.value.retry_in_blocks)
        third = await chain.commit(hotkey, "third")
        current = await chain.commitments()
        assert [(c.hotkey, c.block, c.data) for c in current] == [
            (hotkey.ss58_address, third.block, "third")
        ]


async def test_service_refuses_oversize_even_if_client_skips_check(
    chain_proc: LocalChainProcess, netuid: int, wallets: dict[str, WalletInfo], wallet_path: Path
) -> None:
    async with LocalChain(chain_proc.url, netuid) as chain:
        await chain.register(load_coldkey("miner", wallet_path), wallets["miner"].hotkey)
        hotkey = load_hotkey("miner", "default", wallet_path)
        with pytest.raises(CommitmentTooLargeError):
            await chain.submit(hotkey, "commit", {"data": "é" * 65})  # 130 bytes, 65 chars


async def test_weights_need_permit_are_normalised_and_rate_limited(
    chain_proc: LocalChainProcess, netuid: int, wallets: dict[str, WalletInfo], wallet_path: Path
) -> None:
    async with LocalChain(chain_proc.url, netuid) as chain:
        for name in ("miner", "val"):
            await chain.register(load_coldkey(name, wallet_path), wallets[name].hotkey)
        val_hot = load_hotkey("val", "default", wallet_path)
        with pytest.raises(PermissionDeniedError, match="no validator permit"):
            await chain.set_weights(val_hot, {0: 1.0})
        await chain.set_stake(load_coldkey("val", wallet_path), wallets["val"].hotkey, 500)
        graph = await chain.metagraph()
        assert [n.validator_permit for n in graph.neurons] == [False, True]
        with pytest.raises(InvalidWeightsError, match="does not exist"):
            await chain.set_weights(val_hot, {7: 1.0})
        with pytest.raises(InvalidWeightsError):
            await chain.set_weights(val_hot, {0: -1.0})
        record = await chain.set_weights(val_hot, {0: 3.0, 1: 1.0})
        assert record.weights == {0: 65535, 1: 21845}
        with pytest.raises(RateLimitedError):
            await chain.set_weights(val_hot, {0: 1.0})
        rows = await chain.weights()
        assert [(r.validator_uid, r.weights) for r in rows] == [(1, {0: 65535, 1: 21845})]
        assert rows[0].fractions() == pytest.approx({0: 0.75, 1: 0.25}, abs=1e-4)
        # explicit permit override
        await chain.set_permit(load_coldkey("val", wallet_path), wallets["val"].hotkey, False)
        assert not (await chain.metagraph()).neurons[1].validator_permit


async def test_wrong_key_signature_and_replay_are_refused(
    chain_proc: LocalChainProcess, netuid: int, wallets: dict[str, WalletInfo], wallet_path: Path
) -> None:
    async with LocalChain(chain_proc.url, netuid) as chain:
        await chain.register(load_coldkey("miner", wallet_path), wallets["miner"].hotkey)
        info = await chain.info()
        miner = wallets["miner"].hotkey
        call = {"op": "commit", "netuid": netuid, "args": {"data": "forged"}}
        nonce = await chain.nonce(miner)
        forged = sign_message(
            load_hotkey("other", "default", wallet_path),
            signing_payload(info["chain_id"], miner, nonce, call),
        )
        body = {"signer": miner, "nonce": nonce, "call": call, "signature": forged}
        with pytest.raises(InvalidSignatureError, match=miner):
            await chain._request("POST", "/v1/extrinsics", json=body)
        good = sign_message(
            load_hotkey("miner", "default", wallet_path),
            signing_payload(info["chain_id"], miner, nonce, call),
        )
        body["signature"] = good
        await chain._request("POST", "/v1/extrinsics", json=body)
        with pytest.raises(BadNonceError):  # the same signed call again
            await chain._request("POST", "/v1/extrinsics", json=body)
        assert [c.data for c in await chain.commitments()] == ["forged"]


def test_signature_helpers(wallet_path: Path, wallets: dict[str, WalletInfo]) -> None:
    key = load_hotkey("miner", "default", wallet_path)
    sig = sign_message(key, "kinitro-auth:abc:" + key.ss58_address)
    assert verify_signature(key.ss58_address, "kinitro-auth:abc:" + key.ss58_address, sig)
    assert not verify_signature(wallets["other"].hotkey, "kinitro-auth:abc:x", sig)
    assert not verify_signature(key.ss58_address, "tampered", sig)
    assert not verify_signature(key.ss58_address, "x", "0xnothex")
    assert not verify_signature("not-an-address", "x", sig)


def test_normalize_u16_is_idempotent() -> None:
    row = normalize_u16({0: 0.1, 3: 0.7, 5: 0.2, 9: 0.0})
    assert row == {0: 9362, 3: 65535, 5: 18724}
    assert normalize_u16({k: float(v) for k, v in row.items()}) == row
    with pytest.raises(InvalidWeightsError):
        normalize_u16({0: 0.0})
    with pytest.raises(InvalidWeightsError):
        normalize_u16({0: float("nan")})


async def test_state_survives_restart_and_is_shared_by_processes(
    tmp_path: Path, wallets: dict[str, WalletInfo], wallet_path: Path
) -> None:
    data_dir = tmp_path / "chain"
    # one commitment per (long) epoch, so the space used must survive the restart
    rules = {"tempo": 1000, "commit_space": 100}
    with LocalChainProcess(data_dir, block_interval=BLOCK_INTERVAL, **rules) as proc:
        async with LocalChain(proc.url, 1) as chain:
            await chain.register(load_coldkey("miner", wallet_path), wallets["miner"].hotkey)
            record = await chain.commit(load_hotkey("miner", "default", wallet_path), "persist")
            await _wait_blocks(chain, 2)
            height = await chain.block()
        # a second OS process reads it back through the service
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "kinitro", "chain", "commitments", "--url", proc.url, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert [(c["hotkey"], c["block"], c["data"]) for c in json.loads(out.stdout)] == [
            (wallets["miner"].hotkey, record.block, "persist")
        ]
    # a torn final line (crash mid-write) is dropped on restart
    with (data_dir / "extrinsics.jsonl").open("a") as fh:
        fh.write('{"block": 99, "ext": {"tor')
    with LocalChainProcess(data_dir, block_interval=BLOCK_INTERVAL, **rules) as proc:
        async with LocalChain(proc.url, 1) as chain:
            assert await chain.block() >= height
            assert [(c.block, c.data) for c in await chain.commitments()] == [
                (record.block, "persist")
            ]
            with pytest.raises(RateLimitedError):  # commitment space replayed too
                await chain.commit(load_hotkey("miner", "default", wallet_path), "again")


def test_one_service_per_data_dir(tmp_path: Path) -> None:
    with LocalChainProcess(tmp_path / "chain", block_interval=1.0):
        second = LocalChainProcess(tmp_path / "chain", block_interval=1.0, startup_timeout=15)
        with pytest.raises(ChainUnavailableError, match="exited"):
            second.start()
        second.stop()
        assert "already using" in second.log_path.read_text()


async def test_unreachable_chain_is_a_clear_error() -> None:
    async with LocalChain(f"http://127.0.0.1:{free_port()}", 1, timeout=2) as chain:
        with pytest.raises(ChainUnavailableError, match="kinitro chain run"):
            await chain.block()


def test_health_endpoint(chain_proc: LocalChainProcess) -> None:
    assert httpx.get(chain_proc.url + "/health").json()["status"] == "ok"


def test_corrupted_log_is_a_clear_startup_error(tmp_path: Path) -> None:
    data_dir = tmp_path / "chain"
    with LocalChainProcess(data_dir, block_interval=1.0):
        pass
    (data_dir / "extrinsics.jsonl").write_text('{"block": 1, "ext": "garbage"}\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kinitro",
            "chain",
            "run",
            "--data-dir",
            str(data_dir),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "corrupted at line 1" in result.stderr and "Traceback" not in result.stderr
