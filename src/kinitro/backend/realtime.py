"""``/ws/realtime``: the public event feed (wire models in :mod:`kinitro.protocol.realtime`).

A client sends ``subscribe`` (event types, filters on competition / miner / job /
validator / submission); it receives a ``snapshot`` of the current state, then matching
``event`` frames in commit order. Every client has a bounded queue: when a client cannot
keep up, its queue fills and it is dropped (close 1008 "slow consumer"); publishing never
waits for a client.

Events reach the broadcaster of every replica through PostgreSQL NOTIFY (see
:mod:`.events` and :mod:`.listener`), so a client connected to any replica sees every
change. Each event is parsed once and serialised once, whatever the number of clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket, WebSocketDisconnect

from kinitro.protocol.common import ErrorCode
from kinitro.protocol.errors import ProtocolError
from kinitro.protocol.realtime import (
    ErrorMessage,
    Event,
    Ping,
    Pong,
    Snapshot,
    Subscribe,
    Unsubscribe,
    dump_message,
    parse_client_message,
    parse_event,
)

if TYPE_CHECKING:
    from kinitro.backend.metrics import Metrics
    from kinitro.backend.state import BackendState

log = logging.getLogger(__name__)

CLOSE_SLOW = 1008
SEND_TIMEOUT_S = 10.0
MIN_SUBSCRIBE_INTERVAL_S = 1.0


class Client:
    def __init__(self, ws: WebSocket, queue_size: int) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self.subscription: Subscribe | None = None
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
    def __init__(self, queue_size: int, metrics: Metrics) -> None:
        self.queue_size = queue_size
        self.metrics = metrics
        self.clients: set[Client] = set()

    def publish(self, raw: str) -> None:
        """Fan one event (JSON from NOTIFY) out to matching clients; never blocks."""
        try:
            event = parse_event(raw)
        except ProtocolError as exc:
            log.warning("ignoring undecodable event payload: %s", exc)
            return
        self.metrics.events.labels(event.event_type).inc()
        frame: str | None = None
        for client in list(self.clients):
            sub = client.subscription
            if sub is None or client.dropped or not sub.matches(event):
                continue
            if frame is None:
                frame = dump_message(Event(event=event))
            if not client.offer(frame):
                self.drop(client)

    def add(self, client: Client) -> None:
        self.clients.add(client)
        self.metrics.realtime_clients.set(len(self.clients))

    def remove(self, client: Client) -> None:
        self.clients.discard(client)
        self.metrics.realtime_clients.set(len(self.clients))

    def drop(self, client: Client) -> None:
        """Disconnect a client that fell behind (its writer closes the socket)."""
        client.dropped = True
        client.buffer = None
        self.remove(client)
        self.metrics.realtime_dropped.inc()
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                client.queue.get_nowait()
        client.queue.put_nowait(None)

    async def close_all(self, code: int = 1001, reason: str = "backend shutting down") -> None:
        for client in list(self.clients):
            self.remove(client)
            with contextlib.suppress(Exception):
                await client.ws.close(code=code, reason=reason)


def _json_safe(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


async def _subscribe(state: BackendState, client: Client, message: Subscribe) -> None:
    from kinitro.backend.snapshot import build_snapshot

    bc = state.broadcaster
    # register first and buffer events, so nothing committed while the snapshot is built
    # is missed (such an event may also be reflected in the snapshot)
    client.subscription = message
    client.buffer = []
    bc.add(client)
    try:
        data = await build_snapshot(state, message)
    except BaseException:
        client.buffer = None
        raise
    if client.dropped:
        return
    buffered, client.buffer = client.buffer or [], None
    snapshot = dump_message(Snapshot(ref_id=message.id, data=_json_safe(data)))
    for frame in (snapshot, *buffered):
        if not client.offer(frame):
            bc.drop(client)
            return


async def realtime_endpoint(ws: WebSocket, state: BackendState) -> None:
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
            try:
                await asyncio.wait_for(ws.send_text(frame), timeout=SEND_TIMEOUT_S)
            except TimeoutError:
                bc.drop(client)
                with contextlib.suppress(Exception):
                    await ws.close(code=CLOSE_SLOW, reason="slow consumer")
                return

    def reply(message: Any) -> None:
        if not client.offer(dump_message(message)):
            bc.drop(client)

    writer_task = asyncio.create_task(writer())
    last_subscribe = float("-inf")
    try:
        while True:
            receive = asyncio.ensure_future(ws.receive())
            done, _ = await asyncio.wait(
                {receive, writer_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if writer_task in done:
                receive.cancel()
                return
            frame = receive.result()
            if frame["type"] == "websocket.disconnect":
                return
            raw: str | bytes = frame.get("text") or frame.get("bytes") or b""
            try:
                message = parse_client_message(raw)
            except ProtocolError as exc:
                reply(
                    ErrorMessage(
                        code=exc.code, message=exc.message[:4000], ref_id=_ref(exc.message_id)
                    )
                )
                continue
            match message:
                case Subscribe():
                    now = asyncio.get_running_loop().time()
                    if now - last_subscribe < MIN_SUBSCRIBE_INTERVAL_S:
                        reply(
                            ErrorMessage(
                                code=ErrorCode.RATE_LIMITED,
                                message="at most one subscribe per second (snapshots are costly)",
                                ref_id=message.id,
                            )
                        )
                        continue
                    last_subscribe = now
                    await _subscribe(state, client, message)
                case Unsubscribe():
                    client.subscription = None
                    bc.remove(client)
                case Ping():
                    reply(Pong(ref_id=message.id))
                case _:
                    reply(
                        ErrorMessage(
                            code=ErrorCode.UNEXPECTED_MESSAGE, message="unexpected message"
                        )
                    )
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        bc.remove(client)
        writer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer_task


def _ref(message_id: str | None) -> str | None:
    if message_id and len(message_id) == 32 and all(c in "0123456789abcdef" for c in message_id):
        return message_id
    return None
