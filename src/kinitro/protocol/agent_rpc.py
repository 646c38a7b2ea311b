"""Agent RPC codec: the binary protocol between a rollout worker and a sandboxed agent.

Pure (no I/O). ``docs/agent-rpc.md`` is the language-neutral specification; this module is
its reference implementation, used by the agent runtime (server, inside the sandbox) and by
``kinitro.evaluator.agent_client`` (client, in the rollout worker).

Wire format
-----------
A connection carries *frames* in both directions::

    frame = u32 big-endian body length  ||  body (msgpack map)

Every request (client → agent) carries ``type`` and ``id`` (uint, increasing per
connection); every response (agent → client) echoes the ``id`` of its request. Requests:
``hello``, ``reset``, ``act``, ``act_batch``, ``close``; responses ``hello_ok``, ``reset_ok``,
``action``, ``actions``, ``close_ok`` or ``error``. Arrays travel as a map
``{"dtype": name, "shape": [..], "data": bin}`` (C order, little-endian), see :data:`DTYPES`.

Slots: ``hello`` may ask for several *slots* (concurrent episodes, one agent instance
each); ``hello_ok`` grants at most that many. ``reset`` then names its slot, and one
``act_batch`` carries the observations of several slots stacked along a new first axis and
is answered by one ``actions`` (the actions stacked the same way): a round trip — two
context switches and four system calls — serves a whole batch of episodes. Without slots
(the default, 1) the protocol is plain ``act`` / ``action``.

The hot loop (``act`` / ``action``) avoids pydantic and per-step Python objects beyond the
message itself: :func:`encode_act` / :func:`decode_action` are the fast paths, and the array
body is copied once (``tobytes`` / ``frombuffer``).

Errors
------
Every malformed input raises a specific subclass of :class:`AgentRpcError`, itself a
:class:`~kinitro.protocol.errors.ProtocolError`; each leaf also derives from the matching
generic protocol error (shown in brackets) so ``.code`` is the usual ``ErrorCode``::

    AgentRpcError (ProtocolError)
    ├── FrameError
    │   ├── FrameTooLarge          declared length above the maximum  [FrameTooLargeError]
    │   └── MalformedFrame         not msgpack, trailing bytes, not a map  [MalformedFrameError]
    ├── MessageError
    │   ├── UnknownMessageType     ``type`` unknown for this direction  [UnknownMessageTypeError]
    │   └── InvalidMessage         a field is missing, mistyped, out of range  [InvalidMessageError]
    ├── InvalidArray               bad dtype name, shape or data length  [InvalidArrayError]
    │   └── ArraySpecMismatch      a well-formed array that breaks the negotiated spec
    │       ├── WrongDtype
    │       ├── WrongShape
    │       └── NonFiniteValue     NaN or ±Inf in an action  [NonFiniteValueError]
    └── AgentReportedError         the agent answered ``error`` (``.agent_code``)
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NoReturn, TypeAlias

import msgpack
import numpy as np
import numpy.typing as npt

from kinitro.protocol.common import ErrorCode
from kinitro.protocol.errors import (
    FrameTooLargeError,
    InvalidArrayError,
    InvalidMessageError,
    MalformedFrameError,
    NonFiniteValueError,
    ProtocolError,
    UnknownMessageTypeError,
)

SPEC_VERSION: Final = 1
"""Version of the agent RPC; bumped on any incompatible change."""

HEADER: Final = struct.Struct(">I")
HEADER_SIZE: Final = HEADER.size
DEFAULT_MAX_FRAME: Final = 16 * 1024 * 1024
"""Largest frame body either side accepts unless configured otherwise (16 MiB)."""

MAX_NDIM: Final = 8
MAX_SLOTS: Final = 64
"""Most slots (concurrent episodes, one agent instance each) a connection may hold."""
MAX_STRING: Final = 64 * 1024

DTYPES: Final[Mapping[str, np.dtype[Any]]] = {
    "bool": np.dtype("?"),
    "int8": np.dtype("<i1"),
    "uint8": np.dtype("<u1"),
    "int16": np.dtype("<i2"),
    "uint16": np.dtype("<u2"),
    "int32": np.dtype("<i4"),
    "uint32": np.dtype("<u4"),
    "int64": np.dtype("<i8"),
    "uint64": np.dtype("<u8"),
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}
"""Wire dtype names → numpy dtypes (always little-endian on the wire)."""

_DTYPE_NAMES: Final[dict[np.dtype[Any], str]] = {dt: name for name, dt in DTYPES.items()}
_FLOAT_KINDS: Final = frozenset("f")

Array: TypeAlias = npt.NDArray[Any]
Observation: TypeAlias = "Array | dict[str, Array]"
Scalar: TypeAlias = str | int | float | bool | None


# --------------------------------------------------------------------------- errors


class AgentRpcError(ProtocolError):
    """Root of the agent RPC errors (a :class:`ProtocolError`; ``.code`` is an ErrorCode)."""


class FrameError(AgentRpcError):
    """The byte stream is not a valid sequence of frames."""


class FrameTooLarge(FrameError, FrameTooLargeError):
    """A frame declares a body longer than the maximum."""

    default_code = ErrorCode.FRAME_TOO_LARGE


class MalformedFrame(FrameError, MalformedFrameError):
    """The body is not a single msgpack map."""

    default_code = ErrorCode.MALFORMED_FRAME


class MessageError(AgentRpcError):
    """The frame decodes but is not a valid message."""


class UnknownMessageType(MessageError, UnknownMessageTypeError):
    """``type`` names no message of this direction."""

    default_code = ErrorCode.UNKNOWN_MESSAGE_TYPE


class InvalidMessage(MessageError, InvalidMessageError):
    """A field is missing, has the wrong type or is out of range."""

    default_code = ErrorCode.INVALID_MESSAGE


class InvalidArray(AgentRpcError, InvalidArrayError):
    """An encoded array is malformed (unknown dtype, bad shape, wrong data length)."""

    default_code = ErrorCode.INVALID_ARRAY


class ArraySpecMismatch(InvalidArray):
    """A well-formed array does not match the negotiated :class:`ArraySpec`.

    ``what`` names the offending value (``"action"``, ``"observation.rgb"``).
    """

    def __init__(self, what: str, message: str) -> None:
        super().__init__(f"{what}: {message}")
        self.what = what
        self.slot: int | None = None
        """The slot whose action it is, when known (``act_batch``)."""


class WrongDtype(ArraySpecMismatch):
    """The array's dtype differs from the spec's."""


class WrongShape(ArraySpecMismatch):
    """The array's shape differs from the spec's."""


class NonFiniteValue(ArraySpecMismatch, NonFiniteValueError):
    """NaN or ±Inf in a float array that must be finite (actions)."""

    default_code = ErrorCode.NON_FINITE_VALUE


class AgentReportedError(AgentRpcError):
    """The agent side answered with an ``error`` message (not a codec failure).

    ``agent_code`` is one of :data:`ERROR_CODES` (or whatever a non-conforming agent sent).
    """

    default_code = ErrorCode.UNEXPECTED_MESSAGE

    def __init__(self, agent_code: str, message: str, slot: int | None = None) -> None:
        where = f" in slot {slot}" if slot is not None else ""
        super().__init__(f"agent reported {agent_code[:64]}{where}: {message}")
        self.agent_code = agent_code
        self.agent_message = message
        self.slot = slot


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class ArraySpec:
    """Dtype, shape and optional bounds of an array (like a Gymnasium ``Box``)."""

    dtype: str
    shape: tuple[int, ...]
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InvalidArray(f"unknown dtype {self.dtype!r}; expected one of {sorted(DTYPES)}")
        if len(self.shape) > MAX_NDIM or any(
            not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in self.shape
        ):
            raise InvalidArray(f"invalid shape {self.shape!r}")

    @property
    def np_dtype(self) -> np.dtype[Any]:
        return DTYPES[self.dtype]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype, "shape": list(self.shape)}
        if self.low is not None:
            out["low"] = self.low
        if self.high is not None:
            out["high"] = self.high
        return out

    @classmethod
    def from_wire(cls, obj: object, what: str = "spec") -> ArraySpec:
        m = _as_map(obj, what)
        dtype = _get(m, "dtype", str, what)
        shape = _get(m, "shape", list, what)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InvalidMessage(f"{what}.shape must be a list of integers")
        low = _opt_number(m, "low", what)
        high = _opt_number(m, "high", what)
        try:
            return cls(dtype, tuple(shape), low, high)
        except InvalidArray as exc:
            raise InvalidMessage(f"{what}: {exc}") from exc

    def check(self, arr: Array, what: str) -> None:
        """Raise :class:`WrongDtype` / :class:`WrongShape` unless ``arr`` matches exactly."""
        if arr.dtype != DTYPES[self.dtype]:
            raise WrongDtype(what, f"dtype {_dtype_label(arr.dtype)}, expected {self.dtype}")
        if arr.shape != self.shape:
            raise WrongShape(what, f"shape {arr.shape}, expected {self.shape}")


ObservationSpec: TypeAlias = "ArraySpec | dict[str, ArraySpec]"


def observation_spec_to_wire(spec: ObservationSpec) -> dict[str, Any]:
    if isinstance(spec, ArraySpec):
        return spec.to_wire()
    return {"fields": {k: v.to_wire() for k, v in spec.items()}}


def observation_spec_from_wire(obj: object) -> ObservationSpec:
    m = _as_map(obj, "observation_spec")
    if "fields" in m:
        fields = _as_map(m["fields"], "observation_spec.fields")
        out: dict[str, ArraySpec] = {}
        for k, v in fields.items():
            if not isinstance(k, str):
                raise InvalidMessage("observation_spec.fields keys must be strings")
            out[k] = ArraySpec.from_wire(v, f"observation_spec.fields.{k}")
        return out
    return ArraySpec.from_wire(m, "observation_spec")


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """What an agent learns about the episode it is about to play.

    Deliberately nothing derived from the episode seed or the episode's place in the job:
    no seed, no episode index (an agent that knew either could look its episode up in a
    table built offline). ``name`` is the empty string when the competition hides task
    names (``BenchmarkSpec.reveal_task_name = false``). ``metadata`` is free-form but may
    not contain a ``seed`` key either.
    """

    name: str
    benchmark_id: str = ""
    max_steps: int = 0
    metadata: dict[str, Scalar] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if any("seed" in k.lower() for k in self.metadata):
            raise InvalidMessage("task metadata must not carry a seed")

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "benchmark_id": self.benchmark_id,
            "max_steps": self.max_steps,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_wire(cls, obj: object) -> TaskInfo:
        m = _as_map(obj, "task")
        unknown = set(m) - {"name", "benchmark_id", "max_steps", "metadata"}
        if unknown:
            raise InvalidMessage(f"task has unknown fields {sorted(map(str, unknown))}")
        metadata = _as_map(m.get("metadata", {}), "task.metadata")
        for k, v in metadata.items():
            if not isinstance(k, str) or not (v is None or isinstance(v, str | int | float)):
                raise InvalidMessage("task.metadata must map strings to scalars")
        return cls(
            name=_get(m, "name", str, "task"),
            benchmark_id=_get(m, "benchmark_id", str, "task", default=""),
            max_steps=_uint(m, "max_steps", "task", default=0),
            metadata=dict(metadata),
        )


# --------------------------------------------------------------------------- messages

AgentErrorCode: TypeAlias = Literal[
    "agent_exception",  # the agent's own code raised
    "load_failed",  # the bundle could not be loaded (import error, bad manifest)
    "invalid_action",  # the agent returned an action that breaks the action spec
    "unsupported_version",  # the client speaks an RPC version the agent does not
    "protocol_violation",  # the agent received a frame it could not decode
    "bad_state",  # e.g. act before hello/reset
]
ERROR_CODES: Final = frozenset(
    {
        "agent_exception",
        "load_failed",
        "invalid_action",
        "unsupported_version",
        "protocol_violation",
        "bad_state",
    }
)


@dataclass(frozen=True, slots=True)
class Hello:
    id: int
    observation_spec: ObservationSpec
    action_spec: ArraySpec
    spec_version: int = SPEC_VERSION
    slots: int = 1
    """Slots the client would like (1..MAX_SLOTS); the agent may grant fewer."""


@dataclass(frozen=True, slots=True)
class Reset:
    id: int
    task: TaskInfo
    slot: int = 0


@dataclass(frozen=True, slots=True)
class Act:
    """One step of slot 0."""

    id: int
    observation: Observation


@dataclass(frozen=True, slots=True)
class ActBatch:
    """One step of each of ``slots``: observations stacked along a new first axis."""

    id: int
    slots: tuple[int, ...]
    observations: Observation


@dataclass(frozen=True, slots=True)
class Close:
    id: int


@dataclass(frozen=True, slots=True)
class HelloOk:
    id: int
    agent_name: str
    spec_version: int = SPEC_VERSION
    slots: int = 1
    """Slots granted (1..the number asked for)."""


@dataclass(frozen=True, slots=True)
class ResetOk:
    id: int


@dataclass(frozen=True, slots=True)
class Action:
    id: int
    action: Array


@dataclass(frozen=True, slots=True)
class Actions:
    """The answer to ``act_batch``: one action per requested slot, in request order."""

    id: int
    actions: Array


@dataclass(frozen=True, slots=True)
class CloseOk:
    id: int


@dataclass(frozen=True, slots=True)
class Error:
    id: int
    code: str
    message: str
    slot: int | None = None
    """The slot whose agent instance failed (``act_batch``), when known."""


Request: TypeAlias = Hello | Reset | Act | ActBatch | Close
Response: TypeAlias = HelloOk | ResetOk | Action | Actions | CloseOk | Error


# --------------------------------------------------------------------------- arrays


def encode_array(arr: Array) -> dict[str, Any]:
    """Array → wire map. Non-contiguous or big-endian arrays are converted first."""
    name = _DTYPE_NAMES.get(arr.dtype)
    if name is None:
        le = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        name = _DTYPE_NAMES.get(le)
        if name is None:
            raise InvalidArray(f"dtype {_dtype_label(arr.dtype)} cannot be sent")
        arr = arr.astype(le)
    return {"dtype": name, "shape": arr.shape, "data": arr.tobytes()}


def decode_array(obj: object, what: str = "array") -> Array:
    """Wire map → read-only numpy array; raises :class:`InvalidArray`."""
    if type(obj) is not dict:
        raise InvalidArray(f"{what} must be a map with dtype, shape and data")
    try:
        dtype = DTYPES[obj["dtype"]]
        shape = obj["shape"]
        data = obj["data"]
    except (KeyError, TypeError) as exc:
        raise InvalidArray(f"{what}: missing or unknown field ({exc})") from None
    if len(obj) != 3:
        raise InvalidArray(f"{what}: unexpected fields {sorted(map(str, obj))}")
    if type(data) is not bytes:
        raise InvalidArray(f"{what}.data must be binary")
    if type(shape) is not list or len(shape) > MAX_NDIM:
        raise InvalidArray(f"{what}.shape must be a list of at most {MAX_NDIM} integers")
    n = 1
    for d in shape:
        if type(d) is not int or d < 0:
            raise InvalidArray(f"{what}.shape must hold non-negative integers")
        n *= d
    if n * dtype.itemsize != len(data):
        raise InvalidArray(
            f"{what}: {len(data)} data bytes do not match shape {shape} of {dtype.name}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def check_finite(arr: Array, what: str) -> None:
    if arr.dtype.kind in _FLOAT_KINDS and not np.isfinite(arr).all():
        raise NonFiniteValue(what, "contains NaN or Inf")


def check_action(arr: Array, spec: ArraySpec) -> None:
    """Exact dtype and shape, finite values. Bounds are the environment's business."""
    spec.check(arr, "action")
    check_finite(arr, "action")


def coerce_action(value: object, spec: ArraySpec) -> Array:
    """Turn what a (Python) agent returned into an array of ``spec`` (used by the runtime).

    Accepts sequences and arrays whose dtype casts to the spec's dtype within the same kind
    (e.g. float64 → float32, int → float); rejects complex, object and string dtypes, a
    wrong shape (after no reshaping) and non-finite values.
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise WrongDtype("action", f"not an array ({exc})") from None
    target = DTYPES[spec.dtype]
    if arr.dtype != target:
        if arr.dtype.kind not in "biuf" or not np.can_cast(arr.dtype, target, "same_kind"):
            raise WrongDtype(
                "action", f"dtype {_dtype_label(arr.dtype)} cannot become {spec.dtype}"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(target)  # overflow → inf, caught by check_finite below
    if arr.shape != spec.shape:
        raise WrongShape("action", f"shape {arr.shape}, expected {spec.shape}")
    check_finite(arr, "action")
    return arr


def _encode_observation(obs: Observation) -> Any:
    if isinstance(obs, dict):
        return {"fields": {k: encode_array(v) for k, v in obs.items()}}
    return encode_array(obs)


def _decode_observation(obj: object) -> Observation:
    if type(obj) is dict and "fields" in obj:
        fields = obj["fields"]
        if type(fields) is not dict or len(obj) != 1:
            raise InvalidMessage("observation.fields must be a map of arrays")
        out: dict[str, Array] = {}
        for k, v in fields.items():
            if type(k) is not str:
                raise InvalidMessage("observation field names must be strings")
            out[k] = decode_array(v, f"observation.{k}")
        return out
    return decode_array(obj, "observation")


def check_observation(obs: Observation, spec: ObservationSpec) -> None:
    if isinstance(spec, ArraySpec):
        if isinstance(obs, dict):
            raise WrongShape("observation", "got named fields, expected a single array")
        spec.check(obs, "observation")
        return
    if not isinstance(obs, dict) or set(obs) != set(spec):
        raise WrongShape("observation", f"expected fields {sorted(spec)}")
    for k, s in spec.items():
        s.check(obs[k], f"observation.{k}")


# --------------------------------------------------------------------------- frames


def _packb(obj: dict[str, Any]) -> bytes:
    # msgpack.packb builds a fresh Packer per call: thread-safe, ~0.5 µs for an act frame.
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def body_length(header: bytes | bytearray | memoryview, limit: int = DEFAULT_MAX_FRAME) -> int:
    """Decode a 4-byte frame header; raises :class:`FrameTooLarge` above ``limit``."""
    (n,) = HEADER.unpack(header)
    if n > limit:
        raise FrameTooLarge(n, limit)
    return int(n)


class ConnectionClosed(AgentRpcError):
    """The peer closed the stream (cleanly between frames, or in the middle of one)."""

    default_code = ErrorCode.MALFORMED_FRAME

    def __init__(self, message: str, *, mid_frame: bool) -> None:
        super().__init__(message)
        self.mid_frame = mid_frame


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
            body = {"type": "act", "id": i, "observation": _encode_observation(obs)}
        case Action(id=i, action=a):
            body = {"type": "action", "id": i, "action": encode_array(a)}
        case ActBatch(id=i, slots=slots, observations=obs):
            body = {
                "type": "act_batch",
                "id": i,
                "slots": list(slots),
                "observations": _encode_observation(obs),
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
    return frame(_packb(body))


def encode_act(request_id: int, observation: Array) -> bytes:
    """Fast path for the hot loop: a single-array ``act`` frame."""
    name = _DTYPE_NAMES.get(observation.dtype)
    if name is None:
        return encode(Act(request_id, observation))
    return frame(
        _packb(
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
            return Act(i, _decode_observation(m["observation"]))
        case "act_batch":
            if "observations" not in m:
                raise InvalidMessage("act_batch has no observations")
            slots = _slot_list(m.get("slots"))
            obs = _decode_observation(m["observations"])
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
            slot = _uint(m, "slot", "reset", default=0)
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
                _uint(m, "spec_version", "hello"),
                _slot_count(m, "hello"),
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
                _get(m, "agent_name", str, "hello_ok", default=""),
                _uint(m, "spec_version", "hello_ok"),
                _slot_count(m, "hello_ok"),
            )
        case "close_ok":
            return CloseOk(i)
        case "error":
            return Error(
                i,
                _get(m, "code", str, "error"),
                _get(m, "message", str, "error"),
                _opt_slot(m),
            )
    raise UnknownMessageType(f"unknown response type {t[:64]!r}")


def decode_actions(
    body: bytes | bytearray | memoryview,
    request_id: int,
    spec: ArraySpec,
    slots: Sequence[int],
) -> Array:
    """Decode and fully validate the answer to ``act_batch`` ``request_id`` for ``slots``:
    an array of ``len(slots)`` actions of ``spec``. An ``error`` answer raises
    :class:`AgentReportedError`, a non-finite action :class:`NonFiniteValue`, both with
    the failing ``slot`` when known."""
    count = len(slots)
    m = _unpack(body)
    t, i = _header(m)
    if t == "actions" and i == request_id:
        if "actions" not in m:
            raise InvalidMessage("actions response has no actions")
        arr = decode_array(m["actions"], "actions")
        if arr.dtype != DTYPES[spec.dtype]:
            raise WrongDtype("action", f"dtype {_dtype_label(arr.dtype)}, expected {spec.dtype}")
        if arr.shape != (count, *spec.shape):
            raise WrongShape("action", f"batch shape {arr.shape}, expected {(count, *spec.shape)}")
        if arr.dtype.kind in _FLOAT_KINDS and not np.isfinite(arr).all():
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
            _get(m, "code", str, "error"),
            _get(m, "message", str, "error")[:MAX_STRING],
            _opt_slot(m),
        )
    if t not in ("action", "actions", "error", "reset_ok", "hello_ok", "close_ok"):
        raise UnknownMessageType(f"unknown response type {t[:64]!r}")
    raise InvalidMessage(f"expected {expected!r} for request {request_id}, got {t!r} for {i}")


# --------------------------------------------------------------------------- hot path


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def _array_prefix(key: str, spec: ArraySpec) -> bytes:
    """msgpack bytes of ``key: {"dtype": .., "shape": .., "data": <bin header>`` for spec."""
    return (
        _packb_any(key)
        + b"\x83"
        + _packb_any("dtype")
        + _packb_any(spec.dtype)
        + _packb_any("shape")
        + _packb_any(list(spec.shape))
        + _packb_any("data")
        + _bin_header(spec.size * DTYPES[spec.dtype].itemsize)
    )


def _stack(observations: Sequence[Observation] | Array | dict[str, Array]) -> Observation:
    """Per-slot observations stacked along a new first axis (already stacked: as is)."""
    if isinstance(observations, np.ndarray | dict):
        return observations
    first = observations[0]
    if isinstance(first, dict):
        return {k: np.stack([o[k] for o in observations]) for k in first}
    return np.stack(observations)  # type: ignore[arg-type]


def _layout(
    type_name: str, key: str, spec: ArraySpec, slot_count: int
) -> tuple[bytes, bytes, bytes, int]:
    """The constant parts of a fixed-layout frame (see :class:`FrameTemplate`): the body up
    to the uint32 id, the ``slots`` key and array header, the array's prefix, and the
    number of array data bytes."""
    prefix = (
        bytes([0x80 | (4 if slot_count else 3)])
        + _packb_any("type")
        + _packb_any(type_name)
        + _packb_any("id")
        + b"\xce"
    )
    slots_key = b""
    if slot_count:  # the array header of `slot_count` one-byte ints, without the ints
        slots_key = _packb_any("slots") + _packb_any([0] * slot_count)[:-slot_count]
    return prefix, slots_key, _array_prefix(key, spec), spec.size * DTYPES[spec.dtype].itemsize


def _frame_length(type_name: str, key: str, spec: ArraySpec, slot_count: int = 0) -> int:
    """Length (header included) of a fixed-layout frame, without building its buffer."""
    prefix, slots_key, mid, nbytes = _layout(type_name, key, spec, slot_count)
    return HEADER_SIZE + len(prefix) + 4 + len(slots_key) + slot_count + len(mid) + nbytes


def _packb_any(obj: object) -> bytes:
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


_U32 = struct.Struct(">I")


class FrameTemplate:
    """A fixed-layout frame ``{"type": T, "id": <uint32>, KEY: <array of spec>}``, or with
    ``slot_count``, ``{"type": T, "id": <uint32>, "slots": [..], KEY: <array>}``.

    Our own client and runtime send ``act``/``action`` frames in exactly this layout (the
    id always as msgpack ``uint32``, ``0xce``), which is ordinary msgpack; the receiver
    recognises it with two byte comparisons and reads the id and the array at fixed
    offsets. Anything else — another encoder's layout, a partial read, a malformed frame —
    goes to the generic decoder, which accepts any valid encoding and raises the specific
    error. Owns a reusable buffer: not thread-safe.
    """

    __slots__ = (
        "_data_off",
        "_head",
        "_id_off",
        "_mid",
        "_mid_off",
        "_slots_key",
        "_slots_off",
        "array",
        "buf",
        "floats",
        "length",
        "slot_count",
        "spec",
    )

    def __init__(self, type_name: str, key: str, spec: ArraySpec, slot_count: int = 0) -> None:
        """``slot_count`` > 0 adds ``"slots": [s0, …]`` (that many slot numbers, each one
        byte: msgpack positive fixints) between the id and the array (``act_batch``)."""
        self.spec = spec
        self.slot_count = slot_count
        prefix, slots_key, mid, nbytes = _layout(type_name, key, spec, slot_count)
        body_len = len(prefix) + 4 + len(slots_key) + slot_count + len(mid) + nbytes
        self._head = HEADER.pack(body_len) + prefix
        self._id_off = len(self._head)
        self._slots_key = slots_key
        self._slots_off = self._id_off + 4 + len(slots_key)
        self._mid = mid
        self._mid_off = self._slots_off + slot_count
        self._data_off = self._mid_off + len(mid)
        self.length = HEADER_SIZE + body_len
        self.buf = bytearray(
            self._head + bytes(4) + slots_key + bytes(slot_count) + mid + bytes(nbytes)
        )
        self.array: Array = np.frombuffer(
            self.buf, dtype=DTYPES[spec.dtype], count=spec.size, offset=self._data_off
        ).reshape(spec.shape)
        code = {"float16": "e", "float32": "f", "float64": "d"}.get(spec.dtype)
        self.floats: struct.Struct | None = (
            struct.Struct(f"<{spec.size}{code}") if code and spec.size <= 32 else None
        )
        """Unpacks a small float array straight from a buffer (for the finiteness check)."""

    def finite_in(self, buffer: bytearray) -> bool:
        """Whether the float array of a matched frame in ``buffer`` is all finite."""
        if self.floats is not None and math.isfinite(
            sum(self.floats.unpack_from(buffer, self._data_off))
        ):
            return True  # NaN/±Inf propagate through the sum; overflow → exact check below
        return bool(np.isfinite(self.array_in(buffer)).all())

    def with_id(self, request_id: int) -> bytearray:
        """The frame with ``request_id`` and whatever ``array`` holds now."""
        _U32.pack_into(self.buf, self._id_off, request_id)
        return self.buf

    def fill(self, request_id: int, arr: Array) -> bytearray:
        """The frame for ``request_id`` carrying ``arr`` (which must match the spec)."""
        _U32.pack_into(self.buf, self._id_off, request_id)
        self.array[...] = arr
        return self.buf

    def fill_slots(self, slots: Sequence[int]) -> None:
        """Write the slot numbers (each below 128) of the next frame."""
        off = self._slots_off
        self.buf[off : off + self.slot_count] = bytes(slots)

    def match(self, buffer: bytearray, n: int) -> int | None:
        """The id if ``buffer[:n]`` is exactly one frame of this layout, else ``None``."""
        if (
            n != self.length
            or not buffer.startswith(self._head)
            or not buffer.startswith(self._mid, self._mid_off)
            or not buffer.startswith(self._slots_key, self._id_off + 4)
        ):
            return None
        i: int = _U32.unpack_from(buffer, self._id_off)[0]
        return i

    def slots_in(self, buffer: bytearray) -> tuple[int, ...] | None:
        """The slot numbers of a matched frame, or None unless they are valid."""
        off = self._slots_off
        slots = tuple(buffer[off : off + self.slot_count])
        if max(slots) >= MAX_SLOTS or len(set(slots)) != len(slots):
            return None
        return slots

    def array_in(self, buffer: bytearray) -> Array:
        """A view of where a matched frame's array lies in ``buffer`` (copy before reuse)."""
        return np.frombuffer(
            buffer, dtype=DTYPES[self.spec.dtype], count=self.spec.size, offset=self._data_off
        ).reshape(self.spec.shape)


class HotPath:
    """The hot loop's codec for one negotiated spec pair (``act`` ⇄ ``action``).

    Sends :class:`FrameTemplate` frames and recognises them on receipt; everything that is
    not exactly such a frame takes the generic path (:func:`decode_request`,
    :func:`decode_action`), so what is accepted and the errors raised are the same as
    with the generic codec. ``observation_spec`` may be a dict of fields, in which case
    observations always take the generic path. One instance per connection (it owns
    reusable buffers; not thread-safe).
    """

    __slots__ = (
        "_act_in",
        "_action_in",
        "_action_shape",
        "_batch_lengths",
        "_batch_t",
        "_batches_t",
        "_obs_shape",
        "act_t",
        "action_dtype",
        "action_nbytes",
        "action_spec",
        "action_t",
        "obs_dtype",
        "observation_spec",
        "recv_buffer",
        "recv_view",
    )

    def __init__(self, observation_spec: ObservationSpec | None, action_spec: ArraySpec) -> None:
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        self.action_dtype = DTYPES[action_spec.dtype]
        self.action_nbytes = action_spec.size * self.action_dtype.itemsize
        self._action_shape = list(action_spec.shape)
        self.action_t = FrameTemplate("action", "action", action_spec)
        self.act_t: FrameTemplate | None = None
        self.obs_dtype: np.dtype[Any] | None = None
        self._obs_shape: tuple[int, ...] | None = None
        self._act_in: Array | None = None
        # act_batch / actions templates per batch size n, with a view of where their
        # array lies in the receive buffer (created on first use).
        self._batch_t: dict[int, tuple[FrameTemplate, Array]] = {}
        self._batches_t: dict[int, tuple[FrameTemplate, Array]] = {}
        self._batch_lengths: dict[int, int] = {}  # act_batch frame length → n
        if isinstance(observation_spec, ArraySpec):
            self.act_t = FrameTemplate("act", "observation", observation_spec)
            self.obs_dtype = DTYPES[observation_spec.dtype]
            self._obs_shape = observation_spec.shape
            for n in range(1, MAX_SLOTS + 1):
                stacked = ArraySpec(observation_spec.dtype, (n, *observation_spec.shape))
                self._batch_lengths[_frame_length("act_batch", "observations", stacked, n)] = n
        # Receive into this buffer (one recv per frame on the fast path); the parsers read
        # the array through views created once.
        size = max(64 * 1024, self.action_t.length, self.act_t.length if self.act_t else 0)
        self.recv_buffer = bytearray(size)
        self.recv_view = memoryview(self.recv_buffer)
        self._action_in = self.action_t.array_in(self.recv_buffer)
        if self.act_t is not None:
            self._act_in = self.act_t.array_in(self.recv_buffer)

    # client side -------------------------------------------------------------

    def act_frame(self, request_id: int, observation: Observation) -> bytes | bytearray:
        """The ``act`` frame (valid until the next call: it may be a reused buffer)."""
        t = self.act_t
        if (
            t is None
            or type(observation) is not np.ndarray
            or observation.dtype != self.obs_dtype
            or observation.shape != self._obs_shape
            or request_id > 0xFFFFFFFF
        ):
            return encode(Act(request_id, observation))
        return t.fill(request_id, observation)

    def parse_action(self, n: int, request_id: int) -> Array | None:
        """The action if ``recv_buffer[:n]`` is exactly our ``action`` frame for the id."""
        t = self.action_t
        if t.match(self.recv_buffer, n) != request_id:
            return None
        if self.action_dtype.kind == "f" and not t.finite_in(self.recv_buffer):
            raise NonFiniteValue("action", "contains NaN or Inf")
        return self._action_in.copy()

    def decode_action(self, body: bytes | bytearray | memoryview, request_id: int) -> Array:
        """Generic decoding and full validation of the response to ``act``."""
        return decode_action(body, request_id, self.action_spec)

    def act_batch_frame(
        self,
        request_id: int,
        slots: Sequence[int],
        observations: Sequence[Observation] | Array | dict[str, Array],
    ) -> bytes | bytearray:
        """The ``act_batch`` frame (valid until the next call: it may be a reused buffer).

        ``observations``: one per slot (a list, or an array stacked along its first axis),
        copied once, straight into the frame; anything our fixed layout cannot carry
        (dict observations, other dtypes or shapes) is encoded by the generic codec."""
        n = len(slots)
        entry = self._batch_t.get(n)
        if entry is None and self.act_t is not None and 0 < n <= MAX_SLOTS:
            entry = self._act_batch_template(n)
        if entry is not None and request_id <= 0xFFFFFFFF and max(slots) < MAX_SLOTS:
            t = entry[0]
            rows = t.array
            dtype, shape = self.obs_dtype, self._obs_shape
            j = 0
            if type(observations) is np.ndarray:  # already stacked: one copy
                if observations.shape == rows.shape and observations.dtype == dtype:
                    rows[...] = observations
                    j = n
            else:
                for obs in observations:
                    if type(obs) is not np.ndarray or obs.shape != shape or obs.dtype != dtype:
                        break
                    rows[j] = obs
                    j += 1
            if j == n:
                t.fill_slots(slots)
                return t.with_id(request_id)
        return encode(ActBatch(request_id, tuple(slots), _stack(observations)))

    def parse_actions(self, n: int, request_id: int, count: int) -> Array | None:
        """The actions if ``recv_buffer[:n]`` is exactly our ``actions`` frame for the id
        with ``count`` rows, all finite; else ``None`` (the generic path decides)."""
        t, view = self._actions_template(count)
        if t.match(self.recv_buffer, n) != request_id:
            return None
        if self.action_dtype.kind == "f" and not t.finite_in(self.recv_buffer):
            return None  # the generic decoder names the slot
        return view.copy()

    def _act_batch_template(self, n: int) -> tuple[FrameTemplate, Array]:
        entry = self._batch_t.get(n)
        if entry is None:
            spec = self.observation_spec
            assert isinstance(spec, ArraySpec)
            t = FrameTemplate(
                "act_batch", "observations", ArraySpec(spec.dtype, (n, *spec.shape)), n
            )
            entry = self._batch_t[n] = (t, t.array_in(self.recv_buffer))
        return entry

    def _actions_template(self, n: int) -> tuple[FrameTemplate, Array]:
        entry = self._batches_t.get(n)
        if entry is None:
            spec = self.action_spec
            t = FrameTemplate("actions", "actions", ArraySpec(spec.dtype, (n, *spec.shape)))
            entry = self._batches_t[n] = (t, t.array_in(self.recv_buffer))
        return entry

    # agent side --------------------------------------------------------------

    def parse_act(self, n: int) -> Act | None:
        """The request if ``recv_buffer[:n]`` is exactly our ``act`` frame, else ``None``."""
        t = self.act_t
        if t is None or self._act_in is None:
            return None
        i = t.match(self.recv_buffer, n)
        if i is None:
            return None
        return Act(i, self._act_in.copy())

    def parse_act_batch(self, n: int) -> ActBatch | None:
        """The request if ``recv_buffer[:n]`` is exactly our ``act_batch`` frame."""
        count = self._batch_lengths.get(n)
        if count is None or self.act_t is None or n > len(self.recv_buffer):
            return None
        t, view = self._act_batch_template(count)
        i = t.match(self.recv_buffer, n)
        if i is None:
            return None
        slots = t.slots_in(self.recv_buffer)
        if slots is None:
            return None
        return ActBatch(i, slots, view.copy())

    def actions_out(self, n: int) -> FrameTemplate:
        """The ``actions`` template for ``n`` rows: fill ``.array``, then :meth:`send_id`."""
        return self._actions_template(n)[0]

    def action_frame(self, request_id: int, action: Array) -> bytes | bytearray:
        """The ``action`` frame for an action that satisfies the spec (see coerce_action)."""
        if request_id > 0xFFFFFFFF:
            return encode(Action(request_id, action))
        return self.action_t.fill(request_id, action)

    def coerce_action(self, value: object) -> Array:
        """Agent side: the action as an array of the spec's dtype and shape.

        An array that already matches is passed through unchecked for finiteness: the
        client validates every action it receives (it must: the agent controls this
        process), so NaN/Inf is still rejected, as ``invalid_action``, one hop later.
        Anything else goes through :func:`coerce_action` (casts, full checks).
        """
        if type(value) is np.ndarray and value.shape == self.action_spec.shape:
            dt = value.dtype
            if dt is self.action_dtype or dt == self.action_dtype:
                return value
        return coerce_action(value, self.action_spec)


def _same_shape(shape: object, expected: list[int]) -> bool:
    return type(shape) is list and shape == expected and all(type(d) is int for d in shape)


# --------------------------------------------------------------------------- helpers


def _dtype_label(dt: np.dtype[Any]) -> str:
    return _DTYPE_NAMES.get(dt, str(dt))


def _as_map(obj: object, what: str) -> dict[Any, Any]:
    if not isinstance(obj, dict):
        raise InvalidMessage(f"{what} must be a map")
    return obj


def _get(m: dict[Any, Any], key: str, typ: type[Any], what: str, default: Any = ...) -> Any:
    if key not in m:
        if default is ...:
            raise InvalidMessage(f"{what}.{key} is missing")
        return default
    v = m[key]
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise InvalidMessage(f"{what}.{key} must be {typ.__name__}")
    if isinstance(v, str) and len(v) > MAX_STRING:
        raise InvalidMessage(f"{what}.{key} is too long")
    return v


def _uint(m: dict[Any, Any], key: str, what: str, default: int | None = None) -> int:
    v = _get(m, key, int, what, default if default is not None else ...)
    if not isinstance(v, int) or v < 0:
        raise InvalidMessage(f"{what}.{key} must be a non-negative integer")
    return v


def _slot_count(m: dict[Any, Any], what: str) -> int:
    n = _uint(m, "slots", what, default=1)
    if not 1 <= n <= MAX_SLOTS:
        raise InvalidMessage(f"{what}.slots must be between 1 and {MAX_SLOTS}")
    return n


def _opt_slot(m: dict[Any, Any]) -> int | None:
    if m.get("slot") is None:
        return None
    return _uint(m, "slot", "error")


def _slot_list(value: object) -> tuple[int, ...]:
    if type(value) is not list or not 1 <= len(value) <= MAX_SLOTS:
        raise InvalidMessage(f"act_batch.slots must be a list of 1 to {MAX_SLOTS} slot numbers")
    if not all(type(v) is int and 0 <= v < MAX_SLOTS for v in value):
        raise InvalidMessage(f"act_batch.slots must hold integers in [0, {MAX_SLOTS})")
    if len(set(value)) != len(value):
        raise InvalidMessage("act_batch.slots must not repeat a slot")
    return tuple(value)


def _opt_number(m: dict[Any, Any], key: str, what: str) -> float | None:
    v = m.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InvalidMessage(f"{what}.{key} must be a number")
    return float(v)


__all__ = [
    "DEFAULT_MAX_FRAME",
    "DTYPES",
    "HEADER_SIZE",
    "MAX_SLOTS",
    "SPEC_VERSION",
    "Act",
    "ActBatch",
    "Action",
    "Actions",
    "AgentReportedError",
    "AgentRpcError",
    "ArraySpec",
    "ArraySpecMismatch",
    "Close",
    "CloseOk",
    "ConnectionClosed",
    "Error",
    "FrameError",
    "FrameReader",
    "FrameTemplate",
    "FrameTooLarge",
    "Hello",
    "HelloOk",
    "HotPath",
    "InvalidArray",
    "InvalidMessage",
    "MalformedFrame",
    "MessageError",
    "NonFiniteValue",
    "Request",
    "Reset",
    "ResetOk",
    "Response",
    "TaskInfo",
    "UnknownMessageType",
    "WrongDtype",
    "WrongShape",
    "body_length",
    "check_action",
    "check_observation",
    "coerce_action",
    "decode_action",
    "decode_actions",
    "decode_array",
    "decode_request",
    "decode_response",
    "encode",
    "encode_act",
    "encode_array",
]
