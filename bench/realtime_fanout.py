"""Realtime fan-out benchmark: N viewers on ``/ws/realtime``, events at R/s through
PostgreSQL NOTIFY (the path every backend event takes), measured at the viewers.

    .venv/bin/python bench/realtime_fanout.py [--clients 1000] [--rate 200] [--seconds 10]
        [--procs 2] [--compare-src /path/to/old/checkout/src] [--repeat 1]

The backend runs as its own process (``kinitro backend run``). The viewers run in
``--procs`` worker processes with light clients (``realtime_clients.py``: raw sockets, a
regex instead of JSON parsing, one loopback source address each), so on this 2-core
machine the client side is not what is measured; their CPU is reported beside the
backend's. Each event carries its sequence number and send time: a viewer counts every
event it gets, checks their order and bins their latency (1 ms).

Figures: delivered ratio (events received / events × viewers not closed as slow; and
over every viewer),
viewers closed as slow (1008), per-event latency p50/p99/max from NOTIFY to the viewer,
frames/s and events per frame at the viewers, the backend's CPU (% of one core) over
the publishing window. ``--compare-src`` runs the same load against another checkout's
backend (e.g. the previous commit: ``git worktree add /tmp/old <commit>``), alternating
new and old ``--repeat`` times, so ratios come from one run. Prints a Rich table, then
one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


import asyncpg

from backend_harness import add_compare_args, backend_net, cpu_seconds, side_by_side
from kinitro.backend.events import EVENTS_CHANNEL, encode_event
from kinitro.core.db import dsn
from kinitro.protocol.realtime import StatsEvent, Subscribe, dump_message
from realtime_clients import HIST_BINS, worker


def _percentile(hist: array[int], q: float) -> float:
    total = sum(hist)
    if not total:
        return float("nan")
    rank, seen = q / 100 * (total - 1), 0
    for ms, count in enumerate(hist):
        seen += count
        if seen > rank:
            return float(ms)
    return float(HIST_BINS - 1)


async def _publish(db_url: str, rate: float, total: int) -> float:
    conn = await asyncpg.connect(dsn(db_url))
    try:
        started = time.perf_counter()
        for seq in range(total):
            delay = started + seq / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            payload = encode_event(
                StatsEvent(at=datetime.now(UTC), stats={"seq": seq, "sent": time.time()})
            )
            await conn.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, payload)
        return time.perf_counter() - started
    finally:
        await conn.close()


def measure(args: argparse.Namespace, src: Path | None) -> dict[str, Any]:
    env = {
        "KINITRO_BACKEND_REALTIME_QUEUE_SIZE": str(args.queue_size),
        "KINITRO_BACKEND_STATS_INTERVAL_S": "3600",
        "KINITRO_BACKEND_REALTIME_MAX_CLIENTS": str(args.clients + 100),
    }
    if src is not None:
        env["PYTHONPATH"] = str(src)
    subscribe = dump_message(Subscribe(event_types=["stats"]))
    ctx = mp.get_context("spawn")
    with backend_net(args.database_url, **env) as net:
        host, port = "127.0.0.1", int(net.backend_url.rsplit(":", 1)[1])
        pipes, procs = [], []
        share = -(-args.clients // args.procs)
        for p in range(args.procs):
            count = min(share, args.clients - p * share)
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=worker, args=(theirs, host, port, p * share, count, subscribe)
            )
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        try:
            ready = [pipe.recv() for pipe in pipes]
            connected = sum(r[1] for r in ready)
            total = int(args.rate * args.seconds)
            load_before = os.getloadavg()[0]
            cpu0, wall0 = cpu_seconds(net.backend_pid), time.perf_counter()
            started_at = time.time()
            publish_s = asyncio.run(_publish(net.db_url, args.rate, total))
            for pipe in pipes:
                pipe.send(("collect", total, args.drain_s))
            reports = [pipe.recv() for pipe in pipes]
            cpu1, wall1 = cpu_seconds(net.backend_pid), time.perf_counter()
        finally:
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.kill()
    hist = array("q", bytes(8 * HIST_BINS))
    for report in reports:
        for i, n in enumerate(array("q", report["hist"])):
            hist[i] += n
    viewers = [tuple(c) for r in reports for c in r["clients"]]
    received = [n for n, _ in viewers]
    codes = [code for _, code in viewers if code is not None]
    slow = sum(1 for code in codes if code == 1008)
    kept = len(viewers) - slow
    delivered = sum(n for n, code in viewers if code != 1008)
    frames = sum(r["frames"] for r in reports)
    window = max(r["done_at"] for r in reports) - started_at
    return {
        "clients": args.clients,
        "connected": connected,
        "connect_s": round(max(r[2] for r in ready), 2),
        "rate_per_s": args.rate,
        "events": total,
        "publish_s": round(publish_s, 2),
        "delivered_ratio": round(delivered / (total * kept), 5) if kept else 0.0,
        "delivered_all_ratio": round(sum(received) / (total * len(viewers)), 5),
        "closed_slow": slow,
        "closed_other": len(codes) - slow,
        "out_of_order": sum(r["out_of_order"] for r in reports),
        "latency_p50_ms": _percentile(hist, 50),
        "latency_p99_ms": _percentile(hist, 99),
        "latency_max_ms": max((i for i, n in enumerate(hist) if n), default=float("nan")),
        "frames_per_s": round(frames / window, 1),
        "events_per_frame": round(sum(received) / frames, 1) if frames else 0.0,
        "backend_cpu_pct": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
        "clients_cpu_pct": round(100 * sum(r["cpu_s"] for r in reports) / window, 1),
        "load_avg_1m": round(load_before, 2),
        "errors": sorted(
            {e for r in ready for e in r[3]} | {e for r in reports for e in r["errors"]}
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time")
    parser.add_argument("--procs", type=int, default=2, help="client worker processes")
    parser.add_argument("--queue-size", type=int, default=1024, help="per-client queue")
    parser.add_argument("--drain-s", type=float, default=60.0, help="wait for stragglers")
    add_compare_args(parser)
    parser.add_argument("--database-url", default=None, help="admin URL of a PostgreSQL")
    args = parser.parse_args()
    title = f"realtime fan-out: {args.clients} viewers × {args.rate:g} events/s"
    summary = side_by_side(args, lambda src: measure(args, src), title, "latency_p99_ms")
    print(json.dumps({"clients": args.clients, "rate_per_s": args.rate, **summary}))


if __name__ == "__main__":
    main()
