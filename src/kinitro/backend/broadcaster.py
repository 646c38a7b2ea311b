"""Realtime fan-out: every committed event to every subscriber that wants it, at scale.

Events arrive from PostgreSQL NOTIFY (:mod:`.listener`, so every replica sees every
commit) as JSON text. Each is parsed and validated once, serialised once
(:class:`Published`), and appended to the current *tick*. Every ``realtime_tick_s`` the
tick's events are fanned out: subscribers with the same subscription form one group, so
one ``events`` frame is built per group and per tick (the same string for all its
members) and queued to each member. A subscriber's writer (:mod:`.realtime`) sends its
queued frames one after the other, each send waiting while the socket's buffer is full
(backpressure): a client that reads slowly gets bigger frames less often, never a
bigger server.

Guarantees (docs/backend.md, "Realtime WebSocket"):

* commit order — NOTIFY delivers in commit order; ticks and frames keep it;
* snapshot on subscribe — a subscriber joins its group *before* its snapshot is read
  and holds the frames of the meantime until its snapshot is queued (such an event may
  also be reflected in the snapshot; never missed);
* slow consumers — a subscriber with more than ``realtime_queue_size`` events waiting is
  closed with 1008 and its queue freed; it re-subscribes for a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kinitro.protocol.errors import ProtocolError
from kinitro.protocol.realtime import (
    CLOSE_SLOW_CONSUMER,
    MAX_SERVER_FRAME_BYTES,
    RealtimeEvent,
    Subscribe,
    dump_event,
    events_frame,
    parse_event,
)

if TYPE_CHECKING:
    from kinitro.backend.metrics import Metrics

log = logging.getLogger(__name__)

FRAME_BUDGET = MAX_SERVER_FRAME_BYTES // 2
"""A tick with more event bytes than this is split into several frames."""


@dataclass(frozen=True, slots=True)
class Published:
    """One event as fanned out: its typed value (for filters) and its JSON (for frames)."""

    event: RealtimeEvent
    text: str


def subscription_key(sub: Subscribe) -> tuple[frozenset[str], tuple[tuple[str, object], ...]]:
    """Subscriptions with the same key receive the same frames."""
    return frozenset(sub.event_types), tuple(sub.filters)


@dataclass(eq=False)
class Subscriber:
    """Delivery state of one realtime socket: its subscription and its queued frames."""

    limit: int
    subscription: Subscribe | None = None
    queue: deque[tuple[str, tuple[str, ...]]] = field(default_factory=deque)
    """(frame, the serialised events in it), oldest first."""
    held: list[tuple[str, tuple[str, ...]]] | None = None
    """Frames that arrived while the snapshot is being built (sent right after it)."""
    waiting: int = 0
    """Events queued or held."""
    closing: tuple[int, str] | None = None
    """Close code and reason, once the socket is to be closed."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, frame: str, events: tuple[str, ...] = ()) -> bool:
        """Queue a frame (``events``: the events it carries) without waiting; False when
        the client has fallen too far behind."""
        if self.closing is not None:
            return True
        if self.waiting + len(events) > self.limit:
            return False
        self.waiting += len(events)
        if self.held is not None:
            self.held.append((frame, events))
        else:
            self.queue.append((frame, events))
            self.wake.set()
        return True

    def release_held(self, snapshot: str) -> None:
        """The snapshot is ready: it goes out first, then what arrived meanwhile."""
        held, self.held = self.held or [], None
        self.queue.append((snapshot, ()))
        self.queue.extend(held)
        self.wake.set()

    def next_frame(self) -> str | None:
        """The next frame to send (None when nothing is queued). Event frames queued
        one after the other (the writer fell behind a few ticks) go out as one frame: a
        slow reader gets fewer, bigger frames."""
        if not self.queue:
            return None
        frame, events = self.queue.popleft()
        if not events or not self.queue or not self.queue[0][1]:
            self.waiting -= len(events)
            return frame
        batch, size = list(events), sum(map(len, events))
        while self.queue and self.queue[0][1] and size < FRAME_BUDGET:
            more = self.queue.popleft()[1]
            batch.extend(more)
            size += sum(map(len, more))
        self.waiting -= len(batch)
        return events_frame(batch)

    def close(self, code: int, reason: str) -> None:
        """Ask the writer to close the socket; frees what was queued."""
        if self.closing is None:
            self.closing = (code, reason)
        self.queue.clear()
        self.held = None
        self.waiting = 0
        self.wake.set()


class Broadcaster:
    """This replica's subscribers, grouped by subscription, fed one tick at a time."""

    def __init__(self, queue_size: int, tick_s: float, metrics: Metrics) -> None:
        self.queue_size = queue_size
        self.tick_s = tick_s
        self.metrics = metrics
        self.groups: dict[object, tuple[Subscribe, set[Subscriber]]] = {}
        self.subscribed = 0
        self._tick: list[Published] = []
        self._pending = asyncio.Event()

    # ------------------------------------------------------------ events in

    def publish(self, raw: str) -> None:
        """Take one event (JSON from NOTIFY) into the current tick; never blocks."""
        try:
            event = parse_event(raw)
        except ProtocolError as exc:
            log.warning("ignoring undecodable event payload: %s", exc)
            return
        self.metrics.events.labels(event.event_type).inc()
        self._tick.append(Published(event, dump_event(event)))
        self._pending.set()

    async def run(self) -> None:
        """Fan out each tick's events (the background task of one replica)."""
        while True:
            await self._pending.wait()
            await asyncio.sleep(self.tick_s)
            self._pending.clear()
            tick, self._tick = self._tick, []
            self.fan_out(tick)

    def fan_out(self, tick: list[Published]) -> None:
        frames = 0
        for sub, members in list(self.groups.values()):
            for frame, events in _frames(p.text for p in tick if sub.matches(p.event)):
                frames += len(members)
                for member in list(members):
                    if not member.offer(frame, events):
                        self.drop(member)
        if frames:
            self.metrics.realtime_frames.inc(frames)

    # ------------------------------------------------------------ subscribers

    def subscribe(self, member: Subscriber, sub: Subscribe) -> None:
        """(Re)subscribe ``member``: it holds frames until its snapshot is released."""
        self.unsubscribe(member)
        member.subscription = sub
        member.held = []
        key = subscription_key(sub)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = (sub, set())
        group[1].add(member)
        self.subscribed += 1
        self.metrics.realtime_clients.set(self.subscribed)

    def unsubscribe(self, member: Subscriber) -> None:
        sub, member.subscription = member.subscription, None
        if sub is None:
            return
        key = subscription_key(sub)
        group = self.groups.get(key)
        if group is not None and member in group[1]:
            group[1].discard(member)
            self.subscribed -= 1
            if not group[1]:
                del self.groups[key]
        member.held = None
        self.metrics.realtime_clients.set(self.subscribed)

    def drop(self, member: Subscriber) -> None:
        """Disconnect a subscriber that fell behind (its writer closes the socket)."""
        self.unsubscribe(member)
        member.close(CLOSE_SLOW_CONSUMER, "slow consumer")
        self.metrics.realtime_dropped.inc()

    def close_all(self, code: int, reason: str) -> None:
        """Close every subscriber (1012: re-subscribe; 1001: shutting down)."""
        for _, members in list(self.groups.values()):
            for member in list(members):
                self.unsubscribe(member)
                member.close(code, reason)


def _frames(texts: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    """``events`` frames of these serialised events: one, or more if they are huge."""
    frames: list[tuple[str, tuple[str, ...]]] = []
    batch: list[str] = []
    size = 0
    for text in texts:
        if batch and size + len(text) > FRAME_BUDGET:
            frames.append((events_frame(batch), tuple(batch)))
            batch, size = [], 0
        batch.append(text)
        size += len(text) + 1
    if batch:
        frames.append((events_frame(batch), tuple(batch)))
    return frames
