"""``/ws/realtime``: the public event feed, socket side (wire models in
:mod:`kinitro.protocol.realtime`, fan-out in :mod:`.broadcaster`).

A client sends ``subscribe`` (event types, filters on competition / miner / job /
validator / submission); it receives a ``snapshot`` of the current state, then matching
events in commit order, coalesced into ``events`` frames. Per connection, this module
reads the client's messages; what goes out (snapshot, events, replies) is sent by the
connection's :class:`~kinitro.backend.broadcaster.Subscriber`.

Admission is decided before anything costly: a connection attempt takes a token from the
address's REST bucket, and the replica holds at most ``realtime_max_clients`` sockets,
``realtime_max_per_address`` per address (see :mod:`.limits`); refused sockets are
closed with 1013 (replica full) or 4429 (this address) and a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket, WebSocketDisconnect

from kinitro.backend.broadcaster import Subscriber
from kinitro.backend.errors import reply_ref
from kinitro.backend.limits import Refusal, client_address
from kinitro.protocol.common import ErrorCode
from kinitro.protocol.errors import ProtocolError
from kinitro.protocol.realtime import (
    CLOSE_TOO_MANY_FROM_ADDRESS,
    ErrorMessage,
    Ping,
    Pong,
    ServerMessage,
    Subscribe,
    Unsubscribe,
    dump_message,
    parse_client_message,
    snapshot_frame,
)

if TYPE_CHECKING:
    from kinitro.backend.state import BackendState

log = logging.getLogger(__name__)

MIN_SUBSCRIBE_INTERVAL_S = 1.0


def admit(state: BackendState, address: str) -> Refusal | None:
    """Count a new realtime socket from ``address``, or say why it is refused."""
    wait = state.rest_buckets.take(address)
    if wait > 0:
        return Refusal(
            CLOSE_TOO_MANY_FROM_ADDRESS,
            f"too many requests from your address; retry in {wait:.1f}s",
        )
    return state.realtime_caps.admit(address)


async def realtime_endpoint(ws: WebSocket, state: BackendState) -> None:
    address = client_address(ws.scope)
    refusal = admit(state, address)
    await ws.accept()
    if refusal is not None:
        state.metrics.realtime_refused.labels(str(refusal.code)).inc()
        with contextlib.suppress(Exception):
            await ws.close(code=refusal.code, reason=refusal.reason)
        return
    try:
        await _serve(ws, state)
    finally:
        state.realtime_caps.release(address)


async def _serve(ws: WebSocket, state: BackendState) -> None:
    bc = state.broadcaster
    member = Subscriber(socket=ws, limit=state.settings.realtime_queue_size)
    closed = asyncio.ensure_future(member.closed.wait())

    def reply(message: ServerMessage) -> None:
        if not member.offer(dump_message(message)):
            bc.drop(member)

    last_subscribe = float("-inf")
    receive: asyncio.Future[Any] | None = None
    try:
        while True:
            receive = asyncio.ensure_future(ws.receive())
            done, _ = await asyncio.wait({receive, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed in done:  # closed by the server (slow, shutdown) or found gone
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
                        code=exc.code, message=exc.message[:4000], ref_id=reply_ref(exc.message_id)
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
                    await _subscribe(state, member, message, reply)
                case Unsubscribe():
                    bc.unsubscribe(member)
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
        bc.unsubscribe(member)
        member.gone()
        for future in (receive, closed):
            if future is not None:
                future.cancel()


async def _subscribe(
    state: BackendState,
    member: Subscriber,
    message: Subscribe,
    reply: Callable[[ServerMessage], None],
) -> None:
    # join the fan-out first (holding frames), then read the snapshot: nothing committed
    # in between is missed
    state.broadcaster.subscribe(member, message)
    try:
        data = await state.snapshots.get(message)
    except Exception:
        log.warning("realtime snapshot failed", exc_info=True)
        state.broadcaster.unsubscribe(member)
        reply(
            ErrorMessage(
                code=ErrorCode.UNAVAILABLE,
                message="the snapshot could not be read; subscribe again later",
                ref_id=message.id,
            )
        )
        return
    if member.subscription is message:
        member.release_held(snapshot_frame(data, message.id))
