"""Framing and the generic codec: any message ⇄ a frame, with every failure typed.

:class:`FrameReader` reassembles frames from a stream into one reusable buffer;
:func:`encode` / :func:`decode_request` / :func:`decode_response` handle every message;
:func:`decode_action` / :func:`decode_actions` decode *and fully validate* the answer to
one ``act`` / ``act_batch`` (the client's per-step path).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import msgpack
import numpy as np

from kinitro_agent.rpc.errors import (
    AgentReportedError,
    ConnectionClosed,
    FrameTooLarge,
    InvalidMessage,
    MalformedFrame,
    NonFiniteValue,
    UnknownMessageType,
    WrongDtype,
    WrongShape,
)
from kinitro_agent.rpc.messages import (
    Act,
    ActBatch,
    Action,
    Actions,
    Close,
    CloseOk,
    Error,
    Hello,
    HelloOk,
    Request,
    Reset,
    ResetOk,
    Response,
)
from kinitro_agent.rpc.specs import (
    ArraySpec,
    TaskInfo,
    check_action,
    decode_array,
    decode_observation,
    encode_array,
    encode_observation,
    observation_spec_from_wire,
    observation_spec_to_wire,
)
from kinitro_agent.rpc.wire import (
    DEFAULT_MAX_FRAME,
    DTYPE_NAMES,
    DTYPES,
    FLOAT_KINDS,
    HEADER,
    HEADER_SIZE,
    MAX_SLOTS,
    MAX_STRING,
    Array,
    dtype_label,
    get_field,
    get_opt_slot,
    get_slot_count,
    get_slot_list,
    get_uint,
    packb,
)


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def body_length(header: bytes | bytearray | memoryview, limit: int = DEFAULT_MAX_FRAME) -> int:
    """Decode a 4-byte frame header; raises :class:`FrameTooLarge` above ``limit``."""
    (n,) = HEADER.unpack(header)
    if n > limit:
        raise FrameTooLarge(n, limit)
    return int(n)


class FrameReader:
    """Reassembles frames from a byte stream into one reusable buffer (no I/O itself).

    ``read(recv_into)`` calls ``recv_into(view) -> int`` (e.g. ``socket.recv_into``) until
    a whole frame is buffered and returns its body as a memoryview that stays valid until
    the next ``read``. Timeouts are the caller's business (``recv_into`` may raise).
    """

    __slots__ = ("_buf", "_end", "_start", "_view", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, initial: int = 64 * 1024) -> None:
        self.max_frame = max_frame
        self._buf = bytearray(initial)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0

    @property
    def buffered(self) -> int:
        return self._end - self._start

    def read(self, recv_into: Callable[[memoryview], int]) -> memoryview:
        while True:
            avail = self._end - self._start
            need = HEADER_SIZE
            if avail >= HEADER_SIZE:
                n = body_length(self._view[self._start : self._start + HEADER_SIZE], self.max_frame)
                need = HEADER_SIZE + n
                if avail >= need:
                    begin = self._start + HEADER_SIZE
                    self._start += need
                    if self._start == self._end:
                        self._start = self._end = 0
                    return self._view[begin : begin + n]
            self._make_room(need)
            got = recv_into(self._view[self._end :])
            if got == 0:
                mid = self._end > self._start
                raise ConnectionClosed(
                    "connection closed in the middle of a frame" if mid else "connection closed",
                    mid_frame=mid,
                )
            self._end += got

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received elsewhere (e.g. by a fast path that did not match)."""
        n = len(data)
        self._make_room(self._end - self._start + n)
        self._view[self._end : self._end + n] = data
        self._end += n

    def _make_room(self, need: int) -> None:
        if self._start + need <= len(self._buf) and self._end < len(self._buf):
            return
        avail = self._end - self._start
        if need > len(self._buf):
            buf = bytearray(max(need, 2 * len(self._buf)))
            buf[:avail] = self._view[self._start : self._end]
            self._buf, self._view = buf, memoryview(buf)
        else:
            self._view[:avail] = self._view[self._start : self._end]
        self._start, self._end = 0, avail


def encode(msg: Request | Response) -> bytes:
    """Any message → a complete frame (header + msgpack body)."""
    body: dict[str, Any]
    match msg:
        case Act(id=i, observation=obs):
            body = {"type": "act", "id": i, "observation": encode_observation(obs)}
        case Action(id=i, action=a):
            body = {"type": "action", "id": i, "action": encode_array(a)}
        case ActBatch(id=i, slots=slots, observations=obs):
            body = {
                "type": "act_batch",
                "id": i,
                "slots": list(slots),
                "observations": encode_observation(obs),
            }
        case Actions(id=i, actions=a):
            body = {"type": "actions", "id": i, "actions": encode_array(a)}
        case Hello():
            body = {
                "type": "hello",
                "id": msg.id,
                "spec_version": msg.spec_version,
                "observation_spec": observation_spec_to_wire(msg.observation_spec),
                "action_spec": msg.action_spec.to_wire(),
            }
            if msg.slots != 1:
                body["slots"] = msg.slots
        case Reset(id=i, task=t, slot=slot):
            body = {"type": "reset", "id": i, "task": t.to_wire()}
            if slot:
                body["slot"] = slot
        case Close(id=i):
            body = {"type": "close", "id": i}
        case HelloOk():
            body = {
                "type": "hello_ok",
                "id": msg.id,
                "spec_version": msg.spec_version,
                "agent_name": msg.agent_name,
            }
            if msg.slots != 1:
                body["slots"] = msg.slots
        case ResetOk(id=i):
            body = {"type": "reset_ok", "id": i}
        case CloseOk(id=i):
            body = {"type": "close_ok", "id": i}
        case Error(id=i, code=c, message=m, slot=slot):
            body = {"type": "error", "id": i, "code": c, "message": m[:MAX_STRING]}
            if slot is not None:
                body["slot"] = slot
    return frame(packb(body))


def encode_act(request_id: int, observation: Array) -> bytes:
    """Fast path for the hot loop: a single-array ``act`` frame."""
    name = DTYPE_NAMES.get(observation.dtype)
    if name is None:
        return encode(Act(request_id, observation))
    return frame(
        packb(
            {
                "type": "act",
                "id": request_id,
                "observation": {
                    "dtype": name,
                    "shape": observation.shape,
                    "data": observation.tobytes(),
                },
            }
        )
    )


def _unpack(body: bytes | bytearray | memoryview) -> dict[Any, Any]:
    try:
        obj = msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True)
    except msgpack.ExtraData:
        raise MalformedFrame("trailing bytes after the message") from None
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise MalformedFrame(f"body is not valid msgpack ({type(exc).__name__})") from None
    if type(obj) is not dict:
        raise MalformedFrame(f"body must be a msgpack map, got {type(obj).__name__}")
    return obj


def _header(m: dict[Any, Any]) -> tuple[str, int]:
    t = m.get("type")
    i = m.get("id")
    if type(t) is not str:
        raise InvalidMessage("message has no string 'type'")
    if type(i) is not int or i < 0:
        raise InvalidMessage("message has no unsigned integer 'id'")
    return t, i


def decode_request(body: bytes | bytearray | memoryview) -> Request:
    """Frame body → request (used by the agent side)."""
    m = _unpack(body)
    t, i = _header(m)
    match t:
        case "act":
            if "observation" not in m:
                raise InvalidMessage("act has no observation")
            return Act(i, decode_observation(m["observation"]))
        case "act_batch":
            if "observations" not in m:
                raise InvalidMessage("act_batch has no observations")
            slots = get_slot_list(m.get("slots"))
            obs = decode_observation(m["observations"])
            for name, arr in obs.items() if isinstance(obs, dict) else [("", obs)]:
                if arr.ndim == 0 or arr.shape[0] != len(slots):
                    where = f"observations.{name}" if name else "observations"
                    raise InvalidMessage(
                        f"act_batch: {where} must stack {len(slots)} observations "
                        f"along its first axis, got shape {arr.shape}"
                    )
            return ActBatch(i, slots, obs)
        case "reset":
            if "task" not in m:
                raise InvalidMessage("reset has no task")
            slot = get_uint(m, "slot", "reset", default=0)
            if slot >= MAX_SLOTS:
                raise InvalidMessage(f"reset.slot must be below {MAX_SLOTS}")
            return Reset(i, TaskInfo.from_wire(m["task"]), slot)
        case "hello":
            if "observation_spec" not in m or "action_spec" not in m:
                raise InvalidMessage("hello needs observation_spec and action_spec")
            return Hello(
                i,
                observation_spec_from_wire(m["observation_spec"]),
                ArraySpec.from_wire(m["action_spec"], "action_spec"),
                get_uint(m, "spec_version", "hello"),
                get_slot_count(m, "hello"),
            )
        case "close":
            return Close(i)
    raise UnknownMessageType(f"unknown request type {t[:64]!r}")


def decode_response(body: bytes | bytearray | memoryview) -> Response:
    """Frame body → response (used by the client side)."""
    m = _unpack(body)
    t, i = _header(m)
    match t:
        case "action":
            if "action" not in m:
                raise InvalidMessage("action response has no action")
            return Action(i, decode_array(m["action"], "action"))
        case "reset_ok":
            return ResetOk(i)
        case "actions":
            if "actions" not in m:
                raise InvalidMessage("actions response has no actions")
            return Actions(i, decode_array(m["actions"], "actions"))
        case "hello_ok":
            return HelloOk(
                i,
                get_field(m, "agent_name", str, "hello_ok", default=""),
                get_uint(m, "spec_version", "hello_ok"),
                get_slot_count(m, "hello_ok"),
            )
        case "close_ok":
            return CloseOk(i)
        case "error":
            return Error(
                i,
                get_field(m, "code", str, "error"),
                get_field(m, "message", str, "error"),
                get_opt_slot(m),
            )
    raise UnknownMessageType(f"unknown response type {t[:64]!r}")


def decode_actions(
    body: bytes | bytearray | memoryview,
    request_id: int,
    spec: ArraySpec,
    slots: Sequence[int],
) -> Array:
    """Decode and fully validate the answer to ``act_batch`` ``request_id`` for ``slots``:
    an array of ``len(slots)`` actions of ``spec`` (another number of rows is not an
    answer to the request: :class:`InvalidMessage`). An ``error`` answer raises
    :class:`AgentReportedError`, a non-finite action :class:`NonFiniteValue`, both with
    the failing ``slot`` when known."""
    count = len(slots)
    m = _unpack(body)
    t, i = _header(m)
    if t == "actions" and i == request_id:
        if "actions" not in m:
            raise InvalidMessage("actions response has no actions")
        arr = decode_array(m["actions"], "actions")
        if arr.ndim == 0 or arr.shape[0] != count:  # an answer for other slots
            rows = arr.shape[0] if arr.ndim else "no"
            raise InvalidMessage(f"actions for {rows} slots, the request had {count}")
        if arr.dtype != DTYPES[spec.dtype]:
            raise WrongDtype("action", f"dtype {dtype_label(arr.dtype)}, expected {spec.dtype}")
        if arr.shape != (count, *spec.shape):
            raise WrongShape("action", f"batch shape {arr.shape}, expected {(count, *spec.shape)}")
        if arr.dtype.kind in FLOAT_KINDS and not np.isfinite(arr).all():
            row = int(np.flatnonzero(~np.isfinite(arr.reshape(count, -1)).all(axis=1))[0])
            exc = NonFiniteValue("action", f"of slot {slots[row]} contains NaN or Inf")
            exc.slot = slots[row]
            raise exc
        return arr
    _not_the_answer(m, t, i, request_id, "actions")


def decode_action(body: bytes | bytearray | memoryview, request_id: int, spec: ArraySpec) -> Array:
    """Fast path: decode and fully validate the response to ``act`` ``request_id``.

    Returns the action. An ``error`` response is returned to the caller as
    :class:`AgentReportedError`; everything else invalid raises the specific error.
    """
    m = _unpack(body)
    t, i = _header(m)
    if t == "action" and i == request_id:
        if "action" not in m:
            raise InvalidMessage("action response has no action")
        arr = decode_array(m["action"], "action")
        check_action(arr, spec)
        return arr
    _not_the_answer(m, t, i, request_id, "action")


def _not_the_answer(m: dict[Any, Any], t: str, i: int, request_id: int, expected: str) -> NoReturn:
    """Raise for a response that is not the expected answer to ``request_id``: the agent's
    ``error`` as :class:`AgentReportedError`, anything else as the specific violation."""
    if t == "error" and i == request_id:
        raise AgentReportedError(
            get_field(m, "code", str, "error"),
            get_field(m, "message", str, "error")[:MAX_STRING],
            get_opt_slot(m),
        )
    if t not in ("action", "actions", "error", "reset_ok", "hello_ok", "close_ok"):
        raise UnknownMessageType(f"unknown response type {t[:64]!r}")
    raise InvalidMessage(f"expected {expected!r} for request {request_id}, got {t!r} for {i}")
