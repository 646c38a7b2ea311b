"""Validator database and outbox throughput.

Measures, on a real PostgreSQL (a throw-away database):

* ``enqueue_job``: job row + pgqueuer job in one transaction, jobs/s;
* ``append_outbox``: evaluator messages appended one per transaction and 50 per
  transaction, messages/s;
* the outbox sender end to end (``ValidatorNode`` → loopback WebSocket → a minimal backend
  that acks every message): messages/s from a full outbox until it is empty, for several
  in-flight windows — the window is the backpressure knob.

    .venv/bin/python bench/validator_outbox.py [--database-url ADMIN_URL] [--messages 2000]

Without ``--database-url`` (or ``KINITRO_TEST_DATABASE_URL``) a private PostgreSQL cluster
is started from the machine's binaries. Prints a Rich table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from bittensor_wallet import Keypair
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from websockets.asyncio.server import serve

from kinitro.core import migrations
from kinitro.core.db import dsn
from kinitro.core.pgcluster import PostgresCluster
from kinitro.jobqueue import JobQueue
from kinitro.jobqueue.models import MIGRATION_TREE
from kinitro.protocol.common import ArtifactRef, BenchmarkSpec
from kinitro.protocol.validator_ws import (
    Ack,
    AuthChallenge,
    AuthOk,
    AuthResponse,
    Episode,
    EvalJob,
    dump_message,
    parse_validator_message,
    requires_ack,
)
from kinitro.validator.node import ValidatorNode
from kinitro.validator.settings import Settings


def _msg_factories() -> Any:
    def job() -> EvalJob:
        return EvalJob(
            job_id=uuid.uuid4().hex,
            submission_id="sub",
            competition_id="bench",
            miner_hotkey="5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
            miner_uid=1,
            artifact=ArtifactRef(
                registry="local", repo="m/a", revision="v1", sha256="0" * 64, size_bytes=1
            ),
            benchmark=BenchmarkSpec(
                benchmark_id="metaworld/MT1-reach-v3", tasks=["reach-v3"], episodes_per_task=1
            ),
            round_id="r",
            seed=1,
            deadline_s=60,
            created_at=datetime.now(UTC),
        )

    def episode(job_id: str, index: int) -> Episode:
        return Episode(
            job_id=job_id,
            episode_index=index,
            task="reach-v3",
            task_episode=index,
            seed=index,
            success=True,
            total_reward=1.0,
            steps=100,
            terminated=True,
            truncated=False,
            duration_s=0.5,
        )

    return job, episode


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    name = f"kinitro_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(dsn(admin_url))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(migrations.upgrade, MIGRATION_TREE, url)
        yield url
    finally:
        conn = await asyncpg.connect(dsn(admin_url))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def acking_backend(port_holder: list[int], stop: asyncio.Event) -> None:
    """Minimal /ws/validator peer: challenge → auth_ok → ack every state-changing message."""

    async def handler(ws: Any) -> None:
        nonce = secrets.token_hex(16)
        await ws.send(
            dump_message(
                AuthChallenge(
                    nonce=nonce,
                    backend_version="bench",
                    expires_at=datetime.now(UTC) + timedelta(seconds=30),
                )
            )
        )
        reply = parse_validator_message(await ws.recv())
        assert isinstance(reply, AuthResponse)
        await ws.send(
            dump_message(
                AuthOk(hotkey=reply.hotkey, uid=1, heartbeat_interval_s=30, session_id="bench")
            )
        )
        with contextlib.suppress(Exception):
            async for frame in ws:
                message = parse_validator_message(frame)
                if requires_ack(message):
                    await ws.send(dump_message(Ack.of(message)))

    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port_holder.append(server.sockets[0].getsockname()[1])
        await stop.wait()


async def bench(admin_url: str, messages: int, windows: list[int]) -> dict[str, Any]:
    make_job, make_episode = _msg_factories()
    figures: dict[str, Any] = {}
    async with fresh_database(admin_url) as url:
        jq = JobQueue.connect(url, pool_size=4)
        try:
            n_jobs = max(50, messages // 20)
            jobs = [make_job() for _ in range(n_jobs)]
            t0 = time.perf_counter()
            for job in jobs:
                await jq.enqueue_job(job)
            figures["enqueue_jobs_per_s"] = n_jobs / (time.perf_counter() - t0)

            job_id = jobs[0].job_id
            t0 = time.perf_counter()
            for i in range(messages // 4):
                await jq.append_outbox(make_episode(job_id, i))
            figures["append_single_msgs_per_s"] = (messages // 4) / (time.perf_counter() - t0)
            batch = [make_episode(job_id, 100_000 + i) for i in range(messages)]
            t0 = time.perf_counter()
            for start in range(0, messages, 50):
                await jq.append_outbox_many(batch[start : start + 50])
            figures["append_batch50_msgs_per_s"] = messages / (time.perf_counter() - t0)

            keypair = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
            for window in windows:
                pending = (await jq.depths()).outbox
                if pending < messages:
                    more = [
                        make_episode(job_id, 200_000 + window * 10_000 + i) for i in range(messages)
                    ]
                    for start in range(0, len(more), 50):
                        await jq.append_outbox_many(more[start : start + 50])
                    pending = (await jq.depths()).outbox
                stop = asyncio.Event()
                port: list[int] = []
                server = asyncio.create_task(acking_backend(port, stop))
                while not port:  # noqa: ASYNC110 - bench polling
                    await asyncio.sleep(0.01)
                settings = Settings(
                    backend_url=f"ws://127.0.0.1:{port[0]}/ws/validator",
                    database_url=url,
                    outbox_window=window,
                    outbox_poll_s=0.05,
                )
                node = ValidatorNode(settings, jq, keypair)
                t0 = time.perf_counter()
                task = asyncio.create_task(node.run())
                while (await jq.depths()).outbox > 0:  # noqa: ASYNC110 - drained by the node
                    await asyncio.sleep(0.02)
                elapsed = time.perf_counter() - t0
                node.stop()
                await task
                stop.set()
                await server
                figures[f"sender_window_{window}_msgs_per_s"] = pending / elapsed
        finally:
            await jq.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("KINITRO_TEST_DATABASE_URL"))
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--windows", default="1,16,64")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]

    logging.getLogger("websockets").setLevel(logging.CRITICAL)  # the node's REST probe
    cluster = None
    root = None
    admin_url = args.database_url
    if not admin_url:
        root = Path(tempfile.mkdtemp(prefix="kinitro-bench-pg-"))
        root.chmod(0o755)
        cluster = PostgresCluster(root / "pgdata", fsync=False)
        admin_url = cluster.ensure()
    try:
        figures = asyncio.run(bench(admin_url, args.messages, windows))
    finally:
        if cluster is not None:
            cluster.destroy()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    table = Table(title=f"validator database / outbox ({args.messages} messages)")
    table.add_column("measure")
    table.add_column("per second", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:,.0f}")
    Console(stderr=False).print(table)
    sys.stdout.write(json.dumps({k: round(v, 1) for k, v in figures.items()}) + "\n")


if __name__ == "__main__":
    main()
