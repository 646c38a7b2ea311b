"""Acceptance: real backend, validator, LocalChain and (scripted) evaluator processes.

One network (started once, to keep the test fast), two validator nodes:

1. ``kill -9`` the validators at random points while jobs and results flow, killed
   independently in parallel (10 trials in total: during boot/auth and mid-flow);
2. then ``kill -9`` the backend mid-flow and restart it on the same port;
3. every job's result, episodes and step batches are then in the backend exactly once in
   effect (one result per job, unique episode keys, unique status seqs), nothing is left
   in any outbox or dead-letter table, no validator process ever crashed;
4. the weights the backend computed end up on chain through both validators.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kinitro.core import migrations
from kinitro.jobqueue import JobQueue
from kinitro.jobqueue.models import MIGRATION_TREE

from .e2e import BENCHMARKS, Network, Node

# ~60 s on an idle 2-core machine; the generous timeout covers a heavily shared one.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

EPISODES_PER_JOB = BENCHMARKS[0]["episodes_per_task"]
TRIALS_PER_NODE = 5


@pytest.fixture
def make_network(
    tmp_path: Path,
    backend_db_url: str,
    validator_db_url: str,
    make_empty_db: Callable[[], str],
) -> Callable[[int], contextlib.AbstractAsyncContextManager[Network]]:
    @contextlib.asynccontextmanager
    async def make(validators: int) -> AsyncIterator[Network]:
        dbs = [validator_db_url]
        for _ in range(validators - 1):
            db = make_empty_db()
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(migrations.upgrade, MIGRATION_TREE, db).result()
            dbs.append(db)
        net = Network(tmp_path, backend_db_url, dbs)
        try:
            await net.start()
            yield net
        finally:
            net.close()

    return make


def expected_jobs(net: Network) -> int:
    return len(net.miners) * len(BENCHMARKS)


async def results_by_node(net: Network) -> dict[str, list[dict[str, Any]]]:
    return {
        node.name: await asyncio.to_thread(
            net.all_pages, "/api/v1/results", validator_hotkey=node.hotkey
        )
        for node in net.nodes
    }


async def wait_connected(jq: JobQueue, node: Node, within: float) -> None:
    deadline = time.monotonic() + within
    proc = node.validator
    while True:
        conn = await jq.connection()
        if conn.state == "connected" and proc.popen is not None and conn.pid == proc.popen.pid:
            return
        assert time.monotonic() < deadline, f"validator never connected:\n{proc.tail()}"
        await asyncio.sleep(0.05)


async def wait_all_delivered(net: Network, queues: list[JobQueue], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        results = await results_by_node(net)
        delivered = {r["job_id"] for rows in results.values() for r in rows}
        depths = [await jq.depths() for jq in queues]
        if len(delivered) >= expected_jobs(net) and all(
            d.outbox == 0 and d.jobs_queued == 0 and d.jobs_in_flight == 0 for d in depths
        ):
            return
        await asyncio.sleep(0.5)
    submissions = await asyncio.to_thread(net.all_pages, "/api/v1/submissions")
    logs = "\n".join(f"{n.name}:\n{n.validator.tail(15)}" for n in net.nodes)
    raise AssertionError(
        f"not delivered within {within}s: depths={depths}\n"
        f"results={len(delivered)} expected={expected_jobs(net)}\n"
        f"submissions={[(x.get('id'), x.get('status')) for x in submissions]}\n{logs}"
    )


async def assert_exactly_once(net: Network, queues: list[JobQueue]) -> None:
    all_jobs: set[str] = set()
    for node in net.nodes:
        results = await asyncio.to_thread(
            net.all_pages, "/api/v1/results", validator_hotkey=node.hotkey
        )
        per_job = Counter(r["job_id"] for r in results)
        assert set(per_job.values()) <= {1}, per_job
        all_jobs |= set(per_job)
        episodes = await asyncio.to_thread(
            net.all_pages, "/api/v1/episodes", validator_hotkey=node.hotkey
        )
        keys = Counter((e["job_id"], e["episode_index"]) for e in episodes)
        assert len(keys) == len(per_job) * EPISODES_PER_JOB
        assert set(keys.values()) <= {1}
        for job_id in per_job:
            detail = await asyncio.to_thread(net.get, f"/api/v1/jobs/{job_id}")
            seqs = [
                s["seq"]
                for s in detail["status_history"]
                if s.get("validator_hotkey", node.hotkey) == node.hotkey
            ]
            assert len(seqs) == len(set(seqs)), (job_id, seqs)
    assert len(all_jobs) == expected_jobs(net)
    for jq in queues:
        depths = await jq.depths()
        assert depths.outbox == 0 and depths.outbox_dead == 0


async def test_kill9_validators_then_backend_nothing_lost(
    make_network: Callable[[int], contextlib.AbstractAsyncContextManager[Network]],
) -> None:
    seed = random.randrange(2**32)
    async with make_network(2) as net:
        assert net.backend is not None
        queues = [JobQueue.connect(node.db, pool_size=2) for node in net.nodes]
        mid_flow = 0

        async def trials(node: Node, jq: JobQueue, rng: random.Random) -> None:
            nonlocal mid_flow
            for trial in range(TRIALS_PER_NODE):
                await net.submit_miner()  # two more jobs enter the flow
                if trial % 3 == 2:
                    await asyncio.sleep(rng.uniform(0.1, 2.5))  # during boot / auth
                else:
                    await wait_connected(jq, node, within=40)
                    await asyncio.sleep(rng.uniform(0.0, 1.2))  # mid-flow
                    mid_flow += 1
                node.validator.kill9()
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                node.validator.start()

        try:
            # 1. kill -9 both validators independently, at random points, while jobs flow
            await asyncio.gather(
                *(
                    trials(node, jq, random.Random(seed + i))
                    for i, (node, jq) in enumerate(zip(net.nodes, queues, strict=True))
                )
            )
            after_kills = sum([(await jq.depths()).outbox for jq in queues])

            # 2. kill -9 the backend while results flow; validators keep queueing
            await net.submit_miner()
            await asyncio.gather(
                *(wait_connected(jq, n, 40) for n, jq in zip(net.nodes, queues, strict=True))
            )
            await asyncio.sleep(random.Random(seed).uniform(0.2, 1.0))
            net.backend.kill9()
            down_at = time.monotonic()
            await asyncio.sleep(1.5)  # down a while: the validators keep queueing
            for _ in range(300):  # the validators notice the lost socket (> 1.5 s when loaded)
                if all([(await jq.connection()).state == "disconnected" for jq in queues]):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("a validator did not notice that the backend was gone")
            while_down = sum([(await jq.depths()).outbox for jq in queues])
            await asyncio.to_thread(net.start_backend)

            # 3. everything arrives, exactly once in effect
            await wait_all_delivered(net, queues, within=90)
            recovered = time.monotonic() - down_at
            await assert_exactly_once(net, queues)
            assert all(node.validator.alive for node in net.nodes)  # never crashed

            # 4. the weights the backend computed from these results end up on chain
            deadline = time.monotonic() + 30
            while True:
                latest = await asyncio.to_thread(net.get, "/api/v1/weights/latest")
                lasts = [await jq.last_weights_set() for jq in queues]
                if all(x is not None and x.weights_id == latest["weights_id"] for x in lasts):
                    break
                assert time.monotonic() < deadline, (latest, lasts)
                await asyncio.sleep(0.2)
            print(
                f"seed={seed} kill -9 trials={TRIALS_PER_NODE * len(net.nodes)} "
                f"(mid-flow {mid_flow}) jobs={expected_jobs(net)}; outbox after the last "
                f"validator kill={after_kills}, while the backend was down={while_down}; "
                f"all delivered {recovered:.1f}s after the backend kill"
            )
        finally:
            for jq in queues:
                await jq.close()
