"""/ws/realtime: snapshot, filtered ordered events, slow clients dropped, replicas."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from datetime import UTC, datetime
from typing import Any

import asyncpg
import websockets

from kinitro.backend.events import EVENTS_CHANNEL, encode_event
from kinitro.core.db import dsn
from kinitro.protocol.common import JobState
from kinitro.protocol.realtime import StatsEvent, Subscribe, dump_message, parse_server_message
from kinitro.protocol.validator_ws import Ack, JobStatus

from .conftest import Backend, Net, create_competition, login
from .playing import completed, episodes_for
from .test_flow import commit_artifact


class Feed:
    """A realtime client socket that hands out events one at a time (the server
    coalesces them into ``events`` frames)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.pending: deque[Any] = deque()

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self) -> Any:
        return await self.ws.recv()

    async def close(self) -> None:
        await self.ws.close()


async def subscribe(backend: Backend, **kwargs: Any) -> tuple[Feed, Any]:
    ws = await websockets.connect(f"{backend.ws_url}/ws/realtime", max_size=None)
    sub = Subscribe(**kwargs)
    await ws.send(dump_message(sub))
    snapshot = parse_server_message(await asyncio.wait_for(ws.recv(), 10))
    assert snapshot.type == "snapshot" and snapshot.ref_id == sub.id
    return Feed(ws), snapshot


async def next_event(feed: Feed, within: float = 10.0) -> Any:
    while not feed.pending:
        msg = parse_server_message(await asyncio.wait_for(feed.ws.recv(), within))
        assert msg.type == "events", msg
        feed.pending.extend(msg.events)
    return feed.pending.popleft()


async def test_snapshot_then_filtered_events_in_order(backend: Backend, net: Net) -> None:
    first, other = await net.validator(), await net.validator()
    ws, snapshot = await subscribe(
        backend,
        event_types=["validator_connected", "validator_disconnected"],
        filters={"validator_hotkey": first.ss58_address},
    )
    assert set(snapshot.data) >= {"competitions", "leaderboards", "live_jobs", "stats"}
    b, _ = await login(backend, other)  # filtered out
    a, _ = await login(backend, first)
    await a.close()
    got = [await next_event(ws), await next_event(ws)]
    assert [e.event_type for e in got] == ["validator_connected", "validator_disconnected"]
    assert {e.validator_hotkey for e in got} == {first.ss58_address}
    await b.close()
    # ping/pong and typed errors on the same socket
    await ws.send('{"type": "ping", "id": "' + "c" * 32 + '"}')
    assert parse_server_message(await ws.recv()).type == "pong"
    await ws.send("nope")
    err = parse_server_message(await ws.recv())
    assert err.type == "error" and err.code == "malformed_frame"
    # snapshots are costly: re-subscribing is rate limited, the socket survives
    await ws.send(dump_message(Subscribe()))
    await ws.send(dump_message(Subscribe()))
    for _ in range(20):
        reply = parse_server_message(await asyncio.wait_for(ws.recv(), 10))
        if reply.type == "error":
            assert reply.code == "rate_limited"
            break
    else:
        raise AssertionError("no rate_limited error")
    await ws.close()


async def _notify_many(db_url: str, payloads: list[str]) -> None:
    conn = await asyncpg.connect(dsn(db_url))
    try:
        for i, payload in enumerate(payloads):
            await conn.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, payload)
            if i % 20 == 19:
                await asyncio.sleep(0.01)  # a steady stream a healthy client keeps up with
    finally:
        await conn.close()


async def test_stalled_client_is_dropped_without_slowing_others(
    make_backend: Any, backend_db_url: str
) -> None:
    async with make_backend(realtime_queue_size=64) as backend:
        fast, _ = await subscribe(backend, event_types=["stats"])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        sock.connect(("127.0.0.1", backend.settings.port))
        stalled = await websockets.connect(
            f"{backend.ws_url}/ws/realtime",
            sock=sock,
            max_queue=1,
            max_size=None,
            compression=None,
        )
        await stalled.send(dump_message(Subscribe(event_types=["stats"])))
        await asyncio.sleep(0.3)  # the stalled client never reads again
        n = 1500
        filler = "x" * 6000
        payloads = [
            encode_event(StatsEvent(at=datetime.now(UTC), stats={"seq": i, "pad": filler}))
            for i in range(n)
        ]
        sender = asyncio.create_task(_notify_many(backend_db_url, [p for p in payloads if p]))
        seen = []
        while len(seen) < n:
            event = await next_event(fast, within=20)
            if "seq" in event.stats:  # the backend's own periodic stats interleave
                seen.append(event.stats["seq"])
        await sender
        assert seen == list(range(n))  # the fast client got everything, in order
        assert backend.state.metrics.realtime_dropped._value.get() >= 1
        code = None
        try:
            while True:
                await asyncio.wait_for(stalled.recv(), 10)
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
        assert code == 1008
        await fast.close()
        # the dropped client resumes: a new subscription, a fresh snapshot, live events
        resumed, snapshot = await subscribe(backend, event_types=["stats"])
        assert "stats" in snapshot.data
        await _notify_many(
            backend_db_url,
            [encode_event(StatsEvent(at=datetime.now(UTC), stats={"seq": -1})) or ""],
        )
        event = await next_event(resumed, within=10)
        while event.stats.get("seq") != -1:
            event = await next_event(resumed, within=10)
        await resumed.close()


async def test_a_burst_is_coalesced_into_few_frames_in_commit_order(
    backend: Backend, backend_db_url: str
) -> None:
    ws = await websockets.connect(f"{backend.ws_url}/ws/realtime", max_size=None)
    await ws.send(dump_message(Subscribe(event_types=["stats"])))
    assert parse_server_message(await asyncio.wait_for(ws.recv(), 10)).type == "snapshot"
    n = 400
    conn = await asyncpg.connect(dsn(backend_db_url))
    try:  # one transaction: the events commit together, in this order
        async with conn.transaction():
            for i in range(n):
                payload = encode_event(StatsEvent(at=datetime.now(UTC), stats={"seq": i}))
                await conn.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, payload)
    finally:
        await conn.close()
    seen: list[int] = []
    frames = 0
    while len(seen) < n:
        msg = parse_server_message(await asyncio.wait_for(ws.recv(), 10))
        assert msg.type == "events"
        frames += 1
        seen.extend(e.stats["seq"] for e in msg.events if "seq" in e.stats)
    assert seen == list(range(n))
    assert frames <= n // 20, frames  # tens of events per frame, not one each
    await ws.close()


async def test_viewers_subscribing_together_share_snapshot_reads(backend: Backend) -> None:
    before = backend.state.snapshots.builds
    feeds = await asyncio.gather(*(subscribe(backend, event_types=["stats"]) for _ in range(30)))
    assert all("stats" in snapshot.data for _, snapshot in feeds)
    assert backend.state.snapshots.builds - before <= 10
    # a different view is a different read, even at the same moment
    _, narrowed = await subscribe(backend, filters={"competition_id": "nope"})
    assert narrowed.data["competitions"] == []
    for feed, _ in feeds:
        await feed.close()


async def test_events_reach_clients_of_every_replica(make_backend: Any, net: Net) -> None:
    async with make_backend() as one, make_backend() as two:
        ws_one, _ = await subscribe(one, event_types=["validator_connected"])
        ws_two, _ = await subscribe(two, event_types=["validator_connected"])
        hotkey = await net.validator()
        client, ok = await login(one, hotkey)  # the change happens on replica one
        assert ok.type == "auth_ok"
        for ws in (ws_one, ws_two):
            event = await next_event(ws)
            assert event.validator_hotkey == hotkey.ss58_address
        # exactly once per client
        for ws in (ws_one, ws_two):
            try:
                extra = await next_event(ws, 0.5)
            except TimeoutError:
                extra = None
            assert extra is None or extra.event_type != "validator_connected"
        await client.close()
        await ws_one.close()
        await ws_two.close()


async def test_every_event_type_of_a_full_evaluation_reaches_the_feed(
    backend: Backend, net: Net, registry: Any
) -> None:
    feed, _ = await subscribe(backend)
    await create_competition(backend)
    client, _ = await login(backend, await net.validator())
    await commit_artifact(net, registry)
    job = await client.recv_type("eval_job", within=15)
    await client.send(Ack.of(job))
    now = datetime.now(UTC)
    await client.send(
        JobStatus(job_id=job.job_id, state=JobState.RUNNING, seq=1, episodes_total=2, at=now)
    )
    episodes = episodes_for(job, 2)
    for episode in episodes:
        await client.send(episode)
    await client.send(completed(job, episodes))
    wanted = {
        "validator_connected",
        "submission_received",
        "job_created",
        "job_status",
        "episode_completed",
        "evaluation_completed",
        "leaderboard_updated",
        "weights_updated",
        "stats",
    }
    seen: set[str] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not wanted <= seen and loop.time() < deadline:
        seen.add((await next_event(feed, within=deadline - loop.time())).event_type)
    assert wanted <= seen, wanted - seen
    await client.close()
    event = await next_event(feed)
    while event.event_type != "validator_disconnected":
        event = await next_event(feed)
    await feed.close()


async def test_lost_event_stream_asks_clients_to_resubscribe(
    backend: Backend, net: Net, backend_db_url: str
) -> None:
    ws, _ = await subscribe(backend, event_types=["validator_connected"])
    conn = await asyncpg.connect(dsn(backend_db_url))
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
        )
    finally:
        await conn.close()
    assert killed >= 1
    code = None
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 15)
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
    assert code == 1012
    # a fresh subscription works once the listener is back
    await asyncio.sleep(0.5)
    ws, _ = await subscribe(backend, event_types=["validator_connected"])
    hotkey = await net.validator()
    client, _ = await login(backend, hotkey)
    event = await next_event(ws, within=15)
    assert event.validator_hotkey == hotkey.ss58_address
    await client.close()
    await ws.close()
