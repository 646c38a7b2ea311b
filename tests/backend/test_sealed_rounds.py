"""Sealed rounds over the real wire (docs/protocol.md, "Sealed rounds").

Threat 3: the round's commitment is on chain (LocalChain, written by the backend's round
hotkey) before any of its jobs reaches a validator, and the secret revealed after the
round is the one it binds. Threat 2: two validators are sent different seeds, each the
one derived from the round secret and its hotkey, and an episode played on another
validator's (leaked) seeds is refused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg

from kinitro.chain.wallets import create_wallet
from kinitro.core.db import dsn
from kinitro.protocol import rounds
from kinitro.protocol.validator_ws import Ack
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Net, create_competition, login, round_wallet, wait_for
from .playing import deliver, episodes_for
from .test_flow import commit_artifact, get

SEED_SECRET = "a-test-seed-secret-of-at-least-32-chars"


async def sealed_backend_settings(net: Net, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"seed_secret": SEED_SECRET, **await round_wallet(net, tmp_path / "wallets"), **extra}


async def test_commitment_precedes_jobs_and_each_validator_gets_its_own_seed(
    make_backend: Any, net: Net, registry: LocalRegistry, tmp_path: Path
) -> None:
    settings = await sealed_backend_settings(net, tmp_path, replication=2, min_validators=2)
    async with make_backend(**settings, round_duration_s=4) as backend:
        await create_competition(backend)
        a_key, b_key = await net.validator(), await net.validator()
        a, _ = await login(backend, a_key)
        b, _ = await login(backend, b_key)
        await commit_artifact(net, registry)
        job_a = await a.recv_type("eval_job", within=15)
        block_at_dispatch = await net.chain.block()
        job_b = await b.recv_type("eval_job", within=15)
        assert job_a.job_id == job_b.job_id and job_a.round_id == job_b.round_id

        # threat 3: committed on chain, by the round hotkey, before the job was sent
        rnd = await get(backend, f"/api/v1/rounds/{job_a.round_id}")
        assert rnd["secret"] is None and rnd["sealed_until"] == rnd["ends_at"]
        assert rnd["commit_block"] is not None and rnd["commit_block"] <= block_at_dispatch
        record = await net.chain.commitment(rnd["committer_hotkey"], rnd["commit_block"])
        assert record is not None and record.data == rnd["commitment"]
        assert record.block == rnd["commit_block"]
        subs = await get(backend, "/api/v1/submissions")  # the round commitment is no miner's
        assert [s["miner_hotkey"] for s in subs["items"]] == [job_a.miner_hotkey]

        # threat 2: per-validator seeds; the round secret is never sent
        secret = rounds.round_secret(SEED_SECRET.encode(), job_a.round_id)
        assert job_a.seed == rounds.validator_seed(secret, a_key.ss58_address)
        assert job_b.seed == rounds.validator_seed(secret, b_key.ss58_address)
        assert job_a.seed != job_b.seed
        assert secret.hex() not in job_a.model_dump_json() + job_b.model_dump_json()
        await a.send(Ack.of(job_a))
        await b.send(Ack.of(job_b))

        # a validator replaying what another validator leaked is refused
        leaked = episodes_for(job_a, 1)[0]
        ack = await deliver(b, leaked)
        assert not ack.ok and ack.error_code == "cross_check_failed"
        assert "seed" in (ack.detail or "")
        assert (await deliver(a, leaked)).ok

        # the reveal: the secret the chain commitment binds
        async def revealed() -> Any:
            r = await get(backend, f"/api/v1/rounds/{job_a.round_id}")
            return r if r["secret"] else None

        rnd = await wait_for(revealed, within=20)
        assert rnd["sealed_until"] is None
        assert rounds.check_reveal(rnd["id"], rnd["secret"], record.data) == secret
        listed = await get(backend, "/api/v1/rounds", competition_id="mt1")
        assert any(r["id"] == rnd["id"] and r["secret"] == rnd["secret"] for r in listed["items"])
        await a.close()
        await b.close()


async def test_no_job_leaves_before_its_round_is_on_chain(
    make_backend: Any, net: Net, registry: LocalRegistry, tmp_path: Path
) -> None:
    """A round hotkey that is not registered cannot commit (as when its commitment space
    ran out): the job waits, unsent, and the round stays sealed past its end; once the
    commitment is in, the job goes out and the round is revealed."""
    wallets = tmp_path / "wallets"
    info = create_wallet("round", "default", wallets)  # not registered on the subnet yet
    async with make_backend(round_wallet_name="round", round_wallet_path=wallets) as backend:
        await create_competition(backend)
        client, _ = await login(backend, await net.validator())
        await commit_artifact(net, registry)

        async def job_created() -> Any:
            jobs = await get(backend, "/api/v1/jobs")
            return jobs["items"] or None

        [job] = await wait_for(job_created, within=15)
        rnd = await get(backend, f"/api/v1/rounds/{job['round_id']}")
        assert rnd["commit_block"] is None and rnd["commitment"].startswith("kr1:")
        try:
            early = await client.recv_type("eval_job", within=3)
        except TimeoutError:
            early = None
        assert early is None, "a job of an uncommitted round was sent"

        conn = await asyncpg.connect(dsn(backend.settings.database_url))
        try:  # the round ends uncommitted
            await conn.execute("UPDATE eval_rounds SET ends_at = now() WHERE id = $1", rnd["id"])
        finally:
            await conn.close()
        await asyncio.sleep(1.0)  # five scheduler ticks
        assert (await get(backend, f"/api/v1/rounds/{rnd['id']}"))["secret"] is None

        await net.chain.register(net.coldkey, info.hotkey)
        late = await client.recv_type("eval_job", within=20)
        assert late.round_id == rnd["id"]

        async def revealed() -> Any:
            r = await get(backend, f"/api/v1/rounds/{rnd['id']}")
            return r if r["secret"] else None

        done = await wait_for(revealed, within=20)
        assert done["commit_block"] is not None
        assert rounds.check_reveal(done["id"], done["secret"], done["commitment"])
        await client.close()
