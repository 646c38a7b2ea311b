"""Realtime fan-out: every committed event to every subscriber that wants it, at scale.

Events arrive from PostgreSQL NOTIFY (:mod:`.listener`, so every replica sees every
commit) as JSON text. Each is parsed and validated once, serialised once
(:class:`Published`), and appended to the current *tick*. Every ``realtime_tick_s`` the
tick's events are fanned out: subscribers with the same subscription form one group, so
one ``events`` frame is built per group and per tick (the same string for all its
members) and sent to each member right away (:class:`Subscriber`: no task switch per
frame, which with thousands of sockets would cost as much as the send). A socket whose
buffer is full is not written to (backpressure): its frames queue and go out merged once
it drains, so a client that reads slowly gets bigger frames less often, never a bigger
server.

Guarantees (docs/backend.md, "Realtime WebSocket"):

* commit order — NOTIFY delivers in commit order; ticks and frames keep it;
* snapshot on subscribe — a subscriber joins its group *before* its snapshot is read
  and holds the frames of the meantime until its snapshot is queued (such an event may
  also be reflected in the snapshot; never missed);
* slow consumers — a subscriber whose backlog would pass ``realtime_queue_size`` events
  is closed with 1008 and its queue freed; it re-subscribes for a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine, Generator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

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
FAN_OUT_SLICE = 250
"""Subscribers served between two yields to the event loop (REST, ingest keep going)."""


@dataclass(frozen=True, slots=True)
class Published:
    """One event as fanned out: its typed value (for filters) and its JSON (for frames)."""

    event: RealtimeEvent
    text: str


def subscription_key(sub: Subscribe) -> tuple[frozenset[str], tuple[tuple[str, object], ...]]:
    """Subscriptions with the same key receive the same frames."""
    return frozenset(sub.event_types), tuple(sub.filters)


class Socket(Protocol):
    """Where a subscriber's frames go (a Starlette ``WebSocket`` in the app)."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass(eq=False)
class Subscriber:
    """Delivery state of one realtime socket: its subscription and its queued frames.

    Frames are sent as soon as they are queued, from the caller's stack (no task switch
    per frame: with thousands of sockets that switch would cost as much as the send). A
    send that must wait for the socket (its buffer is full) finishes in a task; frames
    queued meanwhile follow when it is done — merged into one when several wait.
    """

    socket: Socket
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
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the socket is closed (by us, or found gone)."""
    _pending: asyncio.Task[None] | None = None
    _pending_close = False

    def offer(self, frame: str, events: tuple[str, ...] = ()) -> bool:
        """Queue a frame (``events``: the events it carries) and send what the socket
        takes; False when the client has fallen too far behind."""
        if self.closing is not None or self.closed.is_set():
            return True  # on its way out: nothing more is kept for it
        if self.waiting and self.waiting + len(events) > self.limit:
            return False  # a backlog past the limit (one big tick alone is fine)
        self.waiting += len(events)
        if self.held is not None:
            self.held.append((frame, events))
        else:
            self.queue.append((frame, events))
            self.pump()
        return True

    def release_held(self, snapshot: str) -> None:
        """The snapshot is ready: it goes out first, then what arrived meanwhile."""
        held, self.held = self.held or [], None
        self.queue.append((snapshot, ()))
        self.queue.extend(held)
        self.pump()

    def next_frame(self) -> str | None:
        """The next frame to send (None when nothing is queued). Event frames queued
        one after the other (the socket was busy a few ticks) go out as one frame: a
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
        """Close the socket (after a send under way); frees what was queued."""
        if self.closing is None:
            self.closing = (code, reason)
        self.queue.clear()
        self.held = None
        self.waiting = 0
        self.pump()

    def pump(self) -> None:
        """Send queued frames in order, then the close if asked, as far as the socket
        takes them without waiting."""
        while self._pending is None and not self.closed.is_set():
            frame = self.next_frame()
            if frame is not None:
                operation = self.socket.send_text(frame)
            elif self.closing is not None:
                operation = self.socket.close(*self.closing)
                self._pending_close = True
            else:
                return
            try:
                waits_for = _start(operation)
            except Exception:  # noqa: BLE001 - the client is gone: nothing more to send
                self.gone()
                return
            if waits_for is not None:
                self._pending = asyncio.ensure_future(_Finish(operation, waits_for))
                self._pending.add_done_callback(self._resume)
            elif self._pending_close:
                self.closed.set()

    def _resume(self, task: asyncio.Task[None]) -> None:
        self._pending = None
        if task.cancelled() or task.exception() is not None or self._pending_close:
            self.gone()
            return
        self.pump()

    def gone(self) -> None:
        """The socket is closed or unusable: stop sending, free the queue."""
        self.closed.set()
        self.queue.clear()
        self.held = None
        self.waiting = 0
        if self._pending is not None:
            self._pending.cancel()


def _start(operation: Coroutine[Any, Any, None]) -> Any:
    """Run ``operation`` until it first waits: None when it completed, else the future it
    waits for (it is then finished by :class:`_Finish`). Raises what it raised."""
    try:
        return operation.send(None)
    except StopIteration:
        return None


class _Finish:
    """Awaitable that drives a started ``operation`` to its end inside a task: the task
    waits on what the operation waits on; a cancellation is thrown into it."""

    def __init__(self, operation: Coroutine[Any, Any, None], waits_for: Any) -> None:
        self.operation = operation
        self.waits_for = waits_for

    def __await__(self) -> Generator[Any, Any, None]:
        operation, waits_for = self.operation, self.waits_for
        while True:
            try:
                value = yield waits_for
            except BaseException as exc:  # noqa: BLE001 - cancellation: passed on
                try:
                    waits_for = operation.throw(exc)
                except StopIteration:
                    return
                continue
            try:
                waits_for = operation.send(value)
            except StopIteration:
                return


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
            await self.fan_out(tick)

    async def fan_out(self, tick: list[Published]) -> None:
        """Queue (and send) the tick's frames; other work gets the loop every
        ``FAN_OUT_SLICE`` subscribers."""
        frames = served = 0
        for sub, members in list(self.groups.values()):
            for frame, events in _frames(p.text for p in tick if sub.matches(p.event)):
                for member in list(members):
                    if member not in members:  # left (or re-subscribed) meanwhile
                        continue
                    frames += 1
                    if not member.offer(frame, events):
                        self.drop(member)
                    served += 1
                    if served % FAN_OUT_SLICE == 0:
                        await asyncio.sleep(0)
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
