"""``/ws/realtime``: the public event feed.

A client sends ``subscribe`` (event types, filters on competition / miner / job /
validator); it receives a ``snapshot`` of the current state, then matching ``event``
frames in the order they were committed. Every client has a bounded queue: when a client
cannot keep up, its queue fills and it is dropped (close 1008 "slow consumer"); the
broadcaster never waits for a client.

Events reach the broadcaster of every replica through PostgreSQL NOTIFY (see
:mod:`.events` and :mod:`.listener`), so a client connected to any replica sees every
change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket, WebSocketDisconnect

from kinitro.backend.events import EVENT_TYPES

if TYPE_CHECKING:
    from kinitro.backend.state import BackendState

log = logging.getLogger(__name__)

FILTER_KEYS = ("competition_id", "miner_hotkey", "job_id", "validator_hotkey")
CLOSE_SLOW = 1008
MAX_CLIENT_FRAME = 64 * 1024


@dataclass
class Subscription:
    event_types: frozenset[str] = frozenset()
    filters: dict[str, str] = field(default_factory=dict)

    def matches(self, event: dict[str, Any]) -> bool:
        if self.event_types and event.get("event_type") not in self.event_types:
            return False
        for key, want in self.filters.items():
            if key in event and event[key] is not None and str(event[key]) != want:
                return False
            if key not in event or event[key] is None:
                # events that do not carry the filtered field are not about it
                return False
        return True


class Client:
    def __init__(self, ws: WebSocket, queue_size: int) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self.subscription: Subscription | None = None
        self.dropped = False
        # events that arrive while the snapshot is being built, delivered right after it
        self.buffer: list[str] | None = None

    def offer(self, frame: str) -> bool:
        """Queue ``frame`` without waiting; False when the client cannot keep up."""
        if self.buffer is not None:
            if len(self.buffer) >= self.queue.maxsize:
                return False
            self.buffer.append(frame)
            return True
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True


class Broadcaster:
    def __init__(self, queue_size: int, metrics: Any) -> None:
        self.queue_size = queue_size
        self.metrics = metrics
        self.clients: set[Client] = set()

    def publish(self, raw: str) -> None:
        """Fan one event (JSON from NOTIFY) out to matching clients; never blocks."""
        try:
            event = json.loads(raw)
        except ValueError:
            log.warning("ignoring undecodable event payload")
            return
        self.metrics.events.labels(str(event.get("event_type"))).inc()
        frame: str | None = None
        for client in list(self.clients):
            sub = client.subscription
            if sub is None or client.dropped or not sub.matches(event):
                continue
            if frame is None:
                frame = json.dumps({"type": "event", "id": uuid.uuid4().hex, "event": event})
            if not client.offer(frame):
                self.drop(client)

    def drop(self, client: Client) -> None:
        client.dropped = True
        self.clients.discard(client)
        self.metrics.realtime_dropped.inc()
        self.metrics.realtime_clients.set(len(self.clients))
        client.buffer = None
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                client.queue.get_nowait()
        client.queue.put_nowait(None)

    async def close_all(self) -> None:
        for client in list(self.clients):
            self.clients.discard(client)
            with contextlib.suppress(Exception):
                await client.ws.close(code=1001, reason="backend shutting down")


def _error(code: str, message: str, ref_id: str | None = None) -> str:
    return json.dumps(
        {
            "type": "error",
            "id": uuid.uuid4().hex,
            "code": code,
            "message": message,
            "ref_id": ref_id,
        }
    )


def parse_subscription(msg: dict[str, Any]) -> Subscription:
    types = msg.get("event_types") or []
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise ValueError("event_types must be a list of strings")
    unknown = sorted(set(types) - EVENT_TYPES)
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)}")
    filters = msg.get("filters") or {}
    if not isinstance(filters, dict):
        raise ValueError("filters must be an object")
    bad = sorted(set(filters) - set(FILTER_KEYS))
    if bad:
        raise ValueError(f"unknown filters: {', '.join(bad)}")
    return Subscription(frozenset(types), {k: str(v) for k, v in filters.items() if v is not None})


async def realtime_endpoint(ws: WebSocket, state: BackendState) -> None:
    from kinitro.backend.snapshot import build_snapshot

    await ws.accept()
    bc = state.broadcaster
    client = Client(ws, state.settings.realtime_queue_size)

    async def writer() -> None:
        while True:
            frame = await client.queue.get()
            if frame is None:
                with contextlib.suppress(Exception):
                    await ws.close(code=CLOSE_SLOW, reason="slow consumer")
                return
            await ws.send_text(frame)

    writer_task = asyncio.create_task(writer())
    try:
        while True:
            receive = asyncio.create_task(ws.receive())
            done, _ = await asyncio.wait(
                {receive, writer_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if writer_task in done:
                receive.cancel()
                return
            frame = receive.result()
            if frame["type"] == "websocket.disconnect":
                return
            text = frame.get("text") or (frame.get("bytes") or b"").decode("utf-8", "replace")
            if len(text) > MAX_CLIENT_FRAME:
                await client.queue.put(_error("frame_too_large", "frame too large"))
                continue
            try:
                msg = json.loads(text)
                if not isinstance(msg, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                await _put(client, _error("malformed_frame", str(exc)))
                continue
            kind = msg.get("type")
            ref = msg.get("id") if isinstance(msg.get("id"), str) else None
            if kind == "subscribe":
                try:
                    sub = parse_subscription(msg)
                except ValueError as exc:
                    await _put(client, _error("invalid_message", str(exc), ref))
                    continue
                # register first, buffering events, so nothing committed while the
                # snapshot is built is missed (an event may also be in the snapshot)
                client.subscription = sub
                client.buffer = []
                bc.clients.add(client)
                bc.metrics.realtime_clients.set(len(bc.clients))
                snapshot = await build_snapshot(state, sub)
                if client.dropped:
                    continue
                buffered, client.buffer = client.buffer or [], None
                for frame_text in [
                    json.dumps(
                        {"type": "snapshot", "id": uuid.uuid4().hex, "data": snapshot},
                        default=str,
                    ),
                    *buffered,
                ]:
                    if not client.offer(frame_text):
                        bc.drop(client)
                        break
            elif kind == "unsubscribe":
                client.subscription = None
                bc.clients.discard(client)
            elif kind == "ping":
                await _put(
                    client, json.dumps({"type": "pong", "id": uuid.uuid4().hex, "ref_id": ref})
                )
            else:
                await _put(client, _error("unknown_message_type", f"unknown type {kind!r}", ref))
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        bc.clients.discard(client)
        bc.metrics.realtime_clients.set(len(bc.clients))
        writer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer_task


async def _put(client: Client, frame: str) -> None:
    """Queue a reply; a client whose queue is full is being dropped anyway."""
    client.offer(frame)
