"""The realtime fan-out's bookkeeping (backend/broadcaster.py), without sockets: one frame
per subscription and tick, shared by its subscribers; snapshot first; slow subscribers
dropped and freed; a writer that fell behind sends one merged frame, in order.

(The same guarantees over the real wire: test_realtime.py.)"""

from __future__ import annotations

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


def _stats(seq: int) -> str:
    return dump_event(StatsEvent(at=NOW, stats={"seq": seq}))


def _connected(hotkey: str) -> str:
    return dump_event(ValidatorConnectedEvent(at=NOW, validator_hotkey=hotkey))


def _events(frame: str) -> list[object]:
    message = parse_server_message(frame)
    assert message.type == "events"
    return list(message.events)


def _subscribed(bc: Broadcaster, sub: Subscribe, limit: int = 100) -> Subscriber:
    member = Subscriber(limit=limit)
    bc.subscribe(member, sub)
    member.release_held('{"snapshot": true}')
    assert member.next_frame() == '{"snapshot": true}'
    return member


def test_one_frame_per_subscription_and_tick_shared_by_its_subscribers() -> None:
    bc = Broadcaster(queue_size=100, tick_s=0.01, metrics=Metrics())
    everything = [_subscribed(bc, Subscribe()) for _ in range(50)]
    only_a = [_subscribed(bc, Subscribe(filters={"validator_hotkey": HK_A})) for _ in range(3)]
    bc.fan_out([_published(r) for r in (_stats(1), _connected(HK_A), _connected(HK_B), _stats(2))])
    frames = [m.queue[0][0] for m in everything]
    assert all(frame is frames[0] for frame in frames)  # built once, the same string
    assert [e.event_type for e in _events(frames[0])] == [  # type: ignore[attr-defined]
        "stats",
        "validator_connected",
        "validator_connected",
        "stats",
    ]
    mine = _events(only_a[0].next_frame() or "")
    assert [e.validator_hotkey for e in mine] == [HK_A]  # type: ignore[attr-defined]
    assert len(bc.groups) == 2
    assert bc.metrics.realtime_frames._value.get() == 53


def test_snapshot_goes_first_and_nothing_meanwhile_is_lost() -> None:
    bc = Broadcaster(queue_size=100, tick_s=0.01, metrics=Metrics())
    member = Subscriber(limit=100)
    bc.subscribe(member, Subscribe())
    bc.fan_out([_published(_stats(1))])  # committed while the snapshot is being read
    assert member.next_frame() is None  # held
    member.release_held("SNAPSHOT")
    assert member.next_frame() == "SNAPSHOT"
    assert [e.stats["seq"] for e in _events(member.next_frame() or "")] == [1]  # type: ignore[attr-defined]


def test_a_slow_subscriber_is_dropped_and_freed_others_are_not() -> None:
    bc = Broadcaster(queue_size=100, tick_s=0.01, metrics=Metrics())
    slow = _subscribed(bc, Subscribe(), limit=10)
    fast = _subscribed(bc, Subscribe(), limit=10)
    for seq in range(12):
        bc.fan_out([_published(_stats(seq))])
        fast.next_frame()  # the fast one keeps up, the slow one never reads
    assert slow.closing == (CLOSE_SLOW_CONSUMER, "slow consumer")
    assert not slow.queue and slow.waiting == 0  # its backlog is freed at once
    assert fast.closing is None and fast.subscription is not None
    assert bc.subscribed == 1
    assert bc.metrics.realtime_dropped._value.get() == 1


def test_a_writer_that_fell_behind_sends_one_merged_frame_in_order() -> None:
    bc = Broadcaster(queue_size=100, tick_s=0.01, metrics=Metrics())
    member = _subscribed(bc, Subscribe())
    for seq in range(5):
        bc.fan_out([_published(_stats(2 * seq)), _published(_stats(2 * seq + 1))])
    member.offer('{"type":"pong"}')  # not an event frame: not merged across
    bc.fan_out([_published(_stats(10))])
    merged = member.next_frame() or ""
    assert [e.stats["seq"] for e in _events(merged)] == list(range(10))  # type: ignore[attr-defined]
    assert member.next_frame() == '{"type":"pong"}'
    assert [e.stats["seq"] for e in _events(member.next_frame() or "")] == [10]  # type: ignore[attr-defined]
    assert member.next_frame() is None and member.waiting == 0


def _published(raw: str) -> Published:
    return Published(parse_event(raw), raw)
