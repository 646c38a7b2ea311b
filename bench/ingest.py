"""Ingest benchmark: step samples per second stored end to end, from a validator's
WebSocket (``episode_steps`` batches, pipelined up to a window of unacked frames) through
the backend into PostgreSQL; a sample counts once the backend has acked its batch.

    .venv/bin/python bench/ingest.py [--batches 2000] [--batch-size 100] [--window 32]
        [--compare-src /path/to/old/checkout/src] [--repeat 1]

Set-up is the real path: a competition over the admin API, a miner's commitment on
LocalChain, the artifact verified from the local registry, the job assigned to the
authenticated validator. Figures: samples/s, ack latency p50/p99 (send → ack of each
batch), messages per transaction, the backend's CPU (% of one core). ``--compare-src``
runs the same load against another checkout's backend (e.g. ``git worktree add /tmp/old
<commit>``), alternating ``--repeat`` times. Prints a Rich table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


import httpx
import websockets
from bittensor_wallet import Keypair

from backend_harness import (
    ADMIN_KEY,
    add_compare_args,
    backend_net,
    cpu_seconds,
    percentile,
    side_by_side,
)
from kinitro.chain.local.client import LocalChain
from kinitro.core.runtime import local_runtime
from kinitro.protocol.commitment import encode_commitment
from kinitro.protocol.validator_ws import (
    Ack,
    AuthResponse,
    EpisodeSteps,
    StepSample,
    dump_message,
    parse_validator_message,
)
from kinitro.storage.artifacts import LocalRegistry


async def run(args: argparse.Namespace, net: object) -> dict[str, float]:
    n = net  # BenchNet
    key = lambda: Keypair.create_from_mnemonic(Keypair.generate_mnemonic())  # noqa: E731
    owner, miner, validator = key(), key(), key()
    chain = LocalChain(n.chain_url, n.netuid)  # type: ignore[attr-defined]
    for hk in (miner, validator):
        await chain.register(owner, hk.ss58_address)
    await chain.set_stake(owner, validator.ss58_address, 1000.0)
    await chain.set_permit(owner, validator.ss58_address, True)
    async with httpx.AsyncClient(
        base_url=n.backend_url,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},  # type: ignore[attr-defined]
    ) as http:
        resp = await http.post(
            "/api/v1/admin/competitions",
            json={
                "id": "bench",
                "name": "bench",
                "active": True,
                "benchmarks": [
                    {
                        "benchmark_id": "metaworld/MT1-reach-v3",
                        "tasks": ["reach-v3"],
                        "episodes_per_task": 10,
                    }
                ],
            },
        )
        resp.raise_for_status()
    archive = n.work / "bundle.tar.gz"  # type: ignore[attr-defined]
    archive.write_bytes(b"bench bundle")
    ref = LocalRegistry(n.registry_dir).upload(archive, "bench/agent")  # type: ignore[attr-defined]
    ws = await websockets.connect(f"{n.ws_url}/ws/validator", max_size=None)  # type: ignore[attr-defined]
    challenge = parse_validator_message(await ws.recv())
    sig = bytes(validator.sign(f"kinitro-auth:{challenge.nonce}:{validator.ss58_address}".encode()))
    await ws.send(
        dump_message(
            AuthResponse(
                hotkey=validator.ss58_address,
                nonce=challenge.nonce,
                signature=sig.hex(),
                validator_version="bench",
                runtime=local_runtime(),
            )
        )
    )
    assert parse_validator_message(await ws.recv()).type == "auth_ok"
    await chain.commit(
        miner,
        encode_commitment(
            competition_id="bench",
            registry="local",
            repo=ref.repo,
            revision=ref.revision,
            sha256=ref.sha256,
        ),
    )
    while True:
        msg = parse_validator_message(await asyncio.wait_for(ws.recv(), 60))
        if msg.type == "eval_job":
            job = msg
            break
    await ws.send(dump_message(Ack.of(job)))
    await chain.close()

    obs = [0.01 * i for i in range(39)]
    frames = []
    for b in range(args.batches):
        samples = [
            StepSample(
                step=b * args.batch_size + i,
                observation=obs,
                action=[0.1, -0.2, 0.3, 0.0],
                reward=0.5,
                success=False,
            )
            for i in range(args.batch_size)
        ]
        msg = EpisodeSteps(
            job_id=job.job_id, episode_index=b // 10, batch_index=b % 10, samples=samples
        )
        frames.append((msg.id, dump_message(msg)))
    sent_at: dict[str, float] = {}
    ack_latency: list[float] = []
    window = asyncio.Semaphore(args.window)
    done = asyncio.Event()
    acked = 0

    async def receiver() -> None:
        nonlocal acked
        while acked < len(frames):
            m = parse_validator_message(await ws.recv())
            if m.type == "ack" and m.ack_id in sent_at:
                assert m.ok, m
                ack_latency.append(time.perf_counter() - sent_at.pop(m.ack_id))
                acked += 1
                window.release()
        done.set()

    recv_task = asyncio.create_task(receiver())
    cpu0 = cpu_seconds(n.backend_pid)  # type: ignore[attr-defined]
    started = time.perf_counter()
    for mid, text in frames:
        await window.acquire()
        sent_at[mid] = time.perf_counter()
        await ws.send(text)
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(n.backend_pid) - cpu0  # type: ignore[attr-defined]
    await recv_task
    await ws.close()
    async with httpx.AsyncClient(base_url=n.backend_url) as http:  # type: ignore[attr-defined]
        stored = (await http.get("/api/v1/stats")).json()["step_samples"]
        metrics = (await http.get("/metrics")).text
    transactions = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("kinitro_backend_ingest_seconds_count")
    )
    total = args.batches * args.batch_size
    return {
        "batches": args.batches,
        "batch_size": args.batch_size,
        "window": args.window,
        "samples": total,
        "stored_samples": stored,
        "elapsed_s": round(elapsed, 3),
        "samples_per_s": round(total / elapsed, 1),
        "batches_per_s": round(args.batches / elapsed, 1),
        "messages_per_transaction": round(args.batches / max(transactions, 1), 1),
        "ack_p50_ms": round(percentile(ack_latency, 50) * 1000, 2),
        "ack_p99_ms": round(percentile(ack_latency, 99) * 1000, 2),
        "backend_cpu_pct": round(100 * cpu / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--window", type=int, default=32, help="unacked batches in flight")
    add_compare_args(parser)
    parser.add_argument("--database-url", default=None, help="admin URL of a PostgreSQL")
    args = parser.parse_args()

    def measure(src: Path | None) -> dict[str, Any]:
        env = {"PYTHONPATH": str(src)} if src is not None else {}
        with backend_net(args.database_url, **env) as net:
            result = asyncio.run(run(args, net))
        return {**result, "load_avg_1m": round(os.getloadavg()[0], 2)}

    title = "validator WebSocket → PostgreSQL ingest (episode_steps)"
    summary = side_by_side(args, measure, title, "samples_per_s")
    print(json.dumps({"batches": args.batches, "batch_size": args.batch_size, **summary}))


if __name__ == "__main__":
    main()
