"""Acceptance: real backend, validator, LocalChain and (scripted) evaluator processes.

* ``kill -9`` validators at random points while jobs and results flow: two validator
  nodes on one backend, killed independently in parallel (≥ 10 trials in total); after the
  last restart every job's result, episodes and step batches are in the backend exactly
  once in effect, statuses are unique per seq, nothing is left in any outbox.
* ``kill -9`` the backend mid-flow: nothing is lost; the validator catches up once it
  returns (same port).
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

from .e2e import BENCHMARKS, Network, Node

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(200)]

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
                pool.submit(migrations.upgrade, "validator", db).result()
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


async def test_kill9_validators_at_random_points(
    make_network: Callable[[int], contextlib.AbstractAsyncContextManager[Network]],
) -> None:
    seed = random.randrange(2**32)
    async with make_network(2) as net:
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
            await asyncio.gather(
                *(
                    trials(node, jq, random.Random(seed + i))
                    for i, (node, jq) in enumerate(zip(net.nodes, queues, strict=True))
                )
            )
            pending = sum([(await jq.depths()).outbox for jq in queues])
            started = time.monotonic()
            await wait_all_delivered(net, queues, within=90)
            catch_up = time.monotonic() - started
            await assert_exactly_once(net, queues)
            print(
                f"seed={seed} kill -9 trials={TRIALS_PER_NODE * len(net.nodes)} "
                f"(mid-flow {mid_flow}) jobs={expected_jobs(net)} "
                f"outbox after last kill={pending} caught up in {catch_up:.1f}s"
            )
        finally:
            for jq in queues:
                await jq.close()


async def test_backend_killed_mid_flow_nothing_lost(
    make_network: Callable[[int], contextlib.AbstractAsyncContextManager[Network]],
) -> None:
    async with make_network(1) as net:
        (node,) = net.nodes
        assert net.backend is not None
        async with JobQueue.connect(node.db, pool_size=2) as jq:
            for _ in range(3):
                await net.submit_miner()
            # wait until jobs reached the validator, then kill the backend while results flow
            deadline = time.monotonic() + 60
            while sum((await jq.depths()).jobs_by_state.values()) < 2:
                assert time.monotonic() < deadline, "no job reached the validator"
                await asyncio.sleep(0.1)
            net.backend.kill9()
            down_at = time.monotonic()
            await asyncio.sleep(2.0)
            assert (await jq.connection()).state == "disconnected"
            piled_up = (await jq.depths()).outbox
            await asyncio.to_thread(net.start_backend)
            await wait_all_delivered(net, [jq], within=90)
            await assert_exactly_once(net, [jq])
            assert node.validator.alive  # never crashed
            # the weights the backend computed from these results end up on chain
            deadline = time.monotonic() + 30
            while True:
                latest = await asyncio.to_thread(net.get, "/api/v1/weights/latest")
                last = await jq.last_weights_set()
                if last is not None and last.weights_id == latest["weights_id"]:
                    break
                assert time.monotonic() < deadline, (latest, last)
                await asyncio.sleep(0.2)
            assert last.block is not None
            print(
                f"outbox while backend down: {piled_up}; "
                f"recovered {time.monotonic() - down_at:.1f}s after the kill"
            )
