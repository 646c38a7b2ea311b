"""Realtime fan-out benchmark: N WebSocket clients on ``/ws/realtime``, events at a fixed
rate injected through PostgreSQL NOTIFY (the path every backend event takes), delivery
latency from the NOTIFY to each client's receipt (p50/p99), deliveries and drops.

    .venv/bin/python bench/realtime_fanout.py [--clients 1000] [--rate 200] [--seconds 5]

The backend runs as its own process (``kinitro backend run``); the clients share this
process's event loop, so on a small machine the client side is part of what is measured.
Prints a Rich table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rich.console import Console
from rich.table import Table

from backend_harness import backend_net, percentile


async def run(args: argparse.Namespace, ws_url: str, db_url: str) -> dict[str, float]:
    import asyncpg
    import websockets

    from kinitro.backend.events import EVENTS_CHANNEL, encode_event
    from kinitro.core.db import dsn
    from kinitro.protocol.realtime import Subscribe, dump_message

    latencies: list[float] = []
    received = 0
    closed_early = 0
    clients = []
    subscribe = dump_message(Subscribe(event_types=["stats"]))
    for i in range(args.clients):
        ws = await websockets.connect(f"{ws_url}/ws/realtime", max_size=None, compression=None)
        await ws.send(subscribe)
        await ws.recv()  # snapshot
        clients.append(ws)
        if i % 100 == 99:
            await asyncio.sleep(0)

    total = int(args.rate * args.seconds)

    async def reader(ws: object) -> None:
        nonlocal received, closed_early
        try:
            while True:
                raw = await ws.recv()  # type: ignore[attr-defined]
                now = time.time()
                stats = json.loads(raw)["event"]["stats"]
                if "sent" not in stats:
                    continue
                latencies.append(now - stats["sent"])
                received += 1
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1008:
                closed_early += 1

    readers = [asyncio.create_task(reader(ws)) for ws in clients]
    conn = await asyncpg.connect(dsn(db_url))
    started = time.perf_counter()
    for seq in range(total):
        target = started + seq / args.rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        payload = encode_event("stats", {"stats": {"seq": seq, "sent": time.time()}})
        await conn.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, payload)
    publish_s = time.perf_counter() - started
    await conn.close()
    expected = total * args.clients
    deadline = time.perf_counter() + 30
    while received < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
        if all(r.done() for r in readers):
            break
    for ws in clients:
        await ws.close()
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {
        "clients": args.clients,
        "rate_per_s": args.rate,
        "events": total,
        "publish_s": round(publish_s, 3),
        "expected_deliveries": expected,
        "delivered": received,
        "delivered_ratio": round(received / expected, 4) if expected else 0.0,
        "clients_dropped": closed_early,
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "deliveries_per_s": round(received / max(publish_s, 1e-9), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--queue-size", type=int, default=1024, help="per-client queue")
    parser.add_argument("--database-url", default=None, help="admin URL of a PostgreSQL")
    args = parser.parse_args()
    with backend_net(
        args.database_url,
        KINITRO_BACKEND_REALTIME_QUEUE_SIZE=str(args.queue_size),
        KINITRO_BACKEND_STATS_INTERVAL_S="3600",
    ) as net:
        result = asyncio.run(run(args, net.ws_url, net.db_url))
    table = Table(title="realtime fan-out (/ws/realtime via LISTEN/NOTIFY)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    Console(stderr=True).print(table)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
