"""The realtime fan-out's bookkeeping (backend/broadcaster.py) against in-memory sockets:
one frame per subscription and tick, shared by its subscribers; snapshot first; a socket
that cannot take more is not written to, its frames go out merged and in order once it
drains; slow subscribers are dropped, freed and closed with 1008.

(The same guarantees over the real wire: test_realtime.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from kinitro.backend.broadcaster import Broadcaster, Published, Subscriber
from kinitro.backend.metrics import Metrics
from kinitro.protocol.realtime import (
    CLOSE_SLOW_CONSUMER,
    StatsEvent,
    Subscribe,
    ValidatorConnectedEvent,
    dump_event,
    parse_event,
    parse_server_message,
)

HK_A = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
HK_B = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class MemorySocket:
    """A socket twin: records frames; while ``full`` is set, a send waits (backpressure)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed_with: tuple[int, str | None] | None = None
        self.full: asyncio.Event | None = None

    async def send_text(self, data: str) -> None:
        if self.full is not None:
            await self.full.wait()
        self.sent.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed_with = (code, reason)


def _stats(seq: int) -> Published:
    return _published(dump_event(StatsEvent(at=NOW, stats={"seq": seq})))


def _connected(hotkey: str) -> Published:
    return _published(dump_event(ValidatorConnectedEvent(at=NOW, validator_hotkey=hotkey)))


def _published(raw: str) -> Published:
    return Published(parse_event(raw), raw)


def _events(frame: str) -> list[object]:
    message = parse_server_message(frame)
    assert message.type == "events"
    return list(message.events)


def _seqs(frame: str) -> list[int]:
    return [e.stats["seq"] for e in _events(frame)]  # type: ignore[attr-defined]


def _subscribed(bc: Broadcaster, sub: Subscribe, limit: int = 100) -> Subscriber:
    member = Subscriber(socket=MemorySocket(), limit=limit)
    bc.subscribe(member, sub)
    member.release_held("SNAPSHOT")
    return member


def _socket(member: Subscriber) -> MemorySocket:
    assert isinstance(member.socket, MemorySocket)
    return member.socket


async def test_one_frame_per_subscription_and_tick_shared_by_its_subscribers() -> None:
    bc = Broadcaster(queue_size=100, tick_s=0.01, metrics=Metrics())
    everything = [_subscribed(bc, Subscribe()) for _ in range(300)]
    only_a = _subscribed(bc, Subscribe(filters={"validator_hotkey": HK_A}))
    await bc.fan_out([_stats(1), _connected(HK_A), _connected(HK_B), _stats(2)])
    frames = [_socket(m).sent[-1] for m in everything]
    assert all(frame is frames[0] for frame in frames)  # built once, the same string
    kinds = [e.event_type for e in _events(frames[0])]  # type: ignore[attr-defined]
    assert kinds == ["stats", "validator_connected", "validator_connected", "stats"]
    mine = _events(_socket(only_a).sent[-1])
    assert [e.validator_hotkey for e in mine] == [HK_A]  # type: ignore[attr-defined]
    assert len(bc.groups) == 2
    assert bc.metrics.realtime_frames._value.get() == 301


async def test_snapshot_goes_first_and_nothing_meanwhile_is_lost() -> None:
    bc = Broadcaster(queue_size=100, tick_s=0.01, metrics=Metrics())
    member = Subscriber(socket=MemorySocket(), limit=100)
    bc.subscribe(member, Subscribe())
    await bc.fan_out([_stats(1)])  # committed while the snapshot is being read
    assert _socket(member).sent == []  # held
    member.release_held("SNAPSHOT")
    sent = _socket(member).sent
    assert sent[0] == "SNAPSHOT" and _seqs(sent[1]) == [1]


async def test_a_full_socket_gets_its_frames_merged_and_in_order_once_it_drains() -> None:
    bc = Broadcaster(queue_size=100, tick_s=0.01, metrics=Metrics())
    member = _subscribed(bc, Subscribe())
    socket = _socket(member)
    socket.full = asyncio.Event()  # the client stops reading
    for seq in range(5):
        await bc.fan_out([_stats(2 * seq), _stats(2 * seq + 1)])
    assert member.offer('{"type":"pong"}')  # not an event frame: never merged across
    await bc.fan_out([_stats(10)])
    assert socket.sent == ["SNAPSHOT"]  # nothing written while it is full
    socket.full.set()  # it drains
    for _ in range(10):
        await asyncio.sleep(0)
    assert [_seqs(f) for f in (socket.sent[1], socket.sent[2])] == [[0, 1], list(range(2, 10))]
    assert socket.sent[3] == '{"type":"pong"}' and _seqs(socket.sent[4]) == [10]
    assert member.waiting == 0 and not member.queue


async def test_a_slow_subscriber_is_dropped_freed_and_closed_others_are_not() -> None:
    bc = Broadcaster(queue_size=100, tick_s=0.01, metrics=Metrics())
    slow = _subscribed(bc, Subscribe(), limit=10)
    fast = _subscribed(bc, Subscribe(), limit=10)
    _socket(slow).full = asyncio.Event()
    for seq in range(12):
        await bc.fan_out([_stats(seq)])
    assert slow.closing == (CLOSE_SLOW_CONSUMER, "slow consumer")
    assert not slow.queue and slow.waiting == 0  # its backlog is freed at once
    assert fast.closing is None and len(_socket(fast).sent) == 13
    assert bc.subscribed == 1 and bc.metrics.realtime_dropped._value.get() == 1
    _socket(slow).full.set()  # type: ignore[union-attr]
    await asyncio.wait_for(slow.closed.wait(), 1)
    assert _socket(slow).closed_with == (CLOSE_SLOW_CONSUMER, "slow consumer")


async def test_a_vanished_socket_stops_the_sending() -> None:
    class Gone(MemorySocket):
        async def send_text(self, data: str) -> None:
            raise OSError("connection reset")

    bc = Broadcaster(queue_size=100, tick_s=0.01, metrics=Metrics())
    member = Subscriber(socket=Gone(), limit=100)
    bc.subscribe(member, Subscribe())
    member.release_held("SNAPSHOT")
    assert member.closed.is_set() and not member.queue
    await bc.fan_out([_stats(1)])  # nothing raised, nothing kept
    assert member.waiting == 0 and not member.queue
