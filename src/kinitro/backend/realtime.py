"""``/ws/realtime``: the public event feed, socket side (wire models in
:mod:`kinitro.protocol.realtime`, fan-out in :mod:`.broadcaster`).

A client sends ``subscribe`` (event types, filters on competition / miner / job /
validator / submission); it receives a ``snapshot`` of the current state, then matching
events in commit order, coalesced into ``events`` frames. Per connection, a reader
handles the client's messages and a writer sends what the broadcaster queued, one frame
at a time, each send waiting while the socket's buffer is full.

Admission is decided before anything costly: a connection attempt takes a token from the
address's REST bucket, and the replica holds at most ``realtime_max_clients`` sockets,
``realtime_max_per_address`` per address (see :mod:`.limits`); refused sockets are
closed with 1013 (replica full) or 4429 (this address) and a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket, WebSocketDisconnect

from kinitro.backend.broadcaster import Subscriber
from kinitro.backend.limits import Refusal, client_address
from kinitro.protocol.common import ErrorCode
from kinitro.protocol.errors import ProtocolError
from kinitro.protocol.realtime import (
    CLOSE_TOO_MANY_FROM_ADDRESS,
    ErrorMessage,
    Ping,
    Pong,
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
    member = Subscriber(limit=state.settings.realtime_queue_size)
    writer = asyncio.create_task(_write(ws, member))

    def reply(message: Any) -> None:
        if not member.offer(dump_message(message)):
            bc.drop(member)

    last_subscribe = float("-inf")
    receive: asyncio.Future[Any] | None = None
    try:
        while True:
            receive = asyncio.ensure_future(ws.receive())
            done, _ = await asyncio.wait({receive, writer}, return_when=asyncio.FIRST_COMPLETED)
            if writer in done:
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
        if receive is not None:
            receive.cancel()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer


async def _subscribe(
    state: BackendState, member: Subscriber, message: Subscribe, reply: Any
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


async def _write(ws: WebSocket, member: Subscriber) -> None:
    """Send queued frames in order; close the socket when asked to."""
    try:
        while True:
            frame = member.next_frame()
            if frame is not None:
                await ws.send_text(frame)
                continue
            if member.closing is not None:
                code, reason = member.closing
                await ws.close(code=code, reason=reason)
                return
            member.wake.clear()
            await member.wake.wait()
    except (WebSocketDisconnect, RuntimeError, OSError):
        return


def _ref(message_id: str | None) -> str | None:
    if message_id and len(message_id) == 32 and all(c in "0123456789abcdef" for c in message_id):
        return message_id
    return None
