"""Round seeds: HMAC of the backend secret, hash published before, seed revealed after."""

from __future__ import annotations

from typing import Any

from kinitro.backend import seeds
from kinitro.protocol.validator_ws import Ack
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Net, create_competition, login, wait_for
from .test_flow import commit_artifact, get


def test_round_seed_is_deterministic_and_committed() -> None:
    a = seeds.current_round(b"secret", "mt1", 3600)
    b = seeds.current_round(b"secret", "mt1", 3600)
    assert a == b and 0 <= a.seed < 2**63
    assert seeds.verify_reveal(a.id, a.seed, a.seed_hash)
    assert not seeds.verify_reveal(a.id, a.seed + 1, a.seed_hash)
    assert seeds.current_round(b"other", "mt1", 3600).seed != a.seed


async def test_seed_hidden_until_round_ends(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend(round_duration_s=2) as backend:
        await create_competition(backend)
        client, _ = await login(backend, await net.validator())
        await commit_artifact(net, registry)
        job = await client.recv_type("eval_job", within=15)
        await client.send(Ack.of(job))
        rounds = (await get(backend, "/api/v1/rounds"))["items"]
        [rnd] = [r for r in rounds if r["id"] == job.round_id]
        public_job = await get(backend, f"/api/v1/jobs/{job.job_id}")
        assert "seed" not in public_job  # never published before the round ends
        if rnd["seed"] is None:
            assert rnd["seed_hash"] == seeds.seed_hash(job.round_id, job.seed)

        async def revealed() -> dict[str, Any] | None:
            for r in (await get(backend, "/api/v1/rounds"))["items"]:
                if r["id"] == job.round_id and r["seed"] is not None:
                    return dict(r)
            return None

        rnd = await wait_for(revealed, within=10)
        assert rnd["seed"] == job.seed
        assert seeds.verify_reveal(rnd["id"], rnd["seed"], rnd["seed_hash"])
        await client.close()
