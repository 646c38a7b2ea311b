"""Two validators' results for one job arriving at the same moment settle the job: each
ingestion counts the results under the job's row lock, so the second sees the first."""

from __future__ import annotations

import asyncio
from typing import Any

from kinitro.protocol.validator_ws import Ack

from .conftest import Net, create_competition, login, wait_for
from .playing import completed, deliver, episodes_for
from .test_flow import commit_artifact, get


async def test_simultaneous_results_of_a_job_settle_it(
    backend: Any, net: Net, registry: Any
) -> None:
    await create_competition(backend, replication=2, min_validators=2)
    clients = [(await login(backend, await net.validator()))[0] for _ in range(2)]
    rounds = 4
    for i in range(rounds):
        await commit_artifact(net, registry, content=f"agent {i}".encode(), miner=None)
        jobs = [await c.recv_type("eval_job", within=15) for c in clients]
        episodes = [episodes_for(job, 1) for job in jobs]
        for client, job, eps in zip(clients, jobs, episodes, strict=True):
            await client.send(Ack.of(job))
            for e in eps:
                assert (await deliver(client, e)).ok
        acks = await asyncio.gather(
            *(
                deliver(c, completed(job, eps))
                for c, job, eps in zip(clients, jobs, episodes, strict=True)
            )
        )
        assert all(a.ok for a in acks)

    async def all_settled() -> bool:
        page = await get(backend, "/api/v1/jobs", limit=20)
        return len(page["items"]) == rounds and all(
            j["state"] == "completed" for j in page["items"]
        )

    try:
        await wait_for(all_settled, within=10)
    except AssertionError:
        page = await get(backend, "/api/v1/jobs", limit=20)
        raise AssertionError([(j["state"], j["replication"]) for j in page["items"]]) from None
