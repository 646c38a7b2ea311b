"""The hot loop's fast path: fixed-layout ``act``/``action`` frames read and written at
fixed offsets in reusable buffers.

Our own client and runtime send these frames in exactly one layout, which is ordinary
msgpack; the receiver recognises it with a few byte comparisons. Anything else goes to the
generic codec (:mod:`kinitro_agent.rpc.codec`), so what is accepted and the errors raised
are the same either way (a fuzz test checks the two agree).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from kinitro_agent.rpc.codec import decode_action, encode
from kinitro_agent.rpc.errors import NonFiniteValue
from kinitro_agent.rpc.messages import Act, ActBatch, Action
from kinitro_agent.rpc.specs import ArraySpec, ObservationSpec, coerce_action
from kinitro_agent.rpc.wire import (
    DTYPES,
    HEADER,
    HEADER_SIZE,
    MAX_SLOTS,
    Array,
    Observation,
    packb,
)


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def _array_prefix(key: str, spec: ArraySpec) -> bytes:
    """msgpack bytes of ``key: {"dtype": .., "shape": .., "data": <bin header>`` for spec."""
    return (
        packb(key)
        + b"\x83"
        + packb("dtype")
        + packb(spec.dtype)
        + packb("shape")
        + packb(list(spec.shape))
        + packb("data")
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
        + packb("type")
        + packb(type_name)
        + packb("id")
        + b"\xce"
    )
    slots_key = b""
    if slot_count:  # the array header of `slot_count` one-byte ints, without the ints
        slots_key = packb("slots") + packb([0] * slot_count)[:-slot_count]
    return prefix, slots_key, _array_prefix(key, spec), spec.size * DTYPES[spec.dtype].itemsize


def _frame_length(type_name: str, key: str, spec: ArraySpec, slot_count: int = 0) -> int:
    """Length (header included) of a fixed-layout frame, without building its buffer."""
    prefix, slots_key, mid, nbytes = _layout(type_name, key, spec, slot_count)
    return HEADER_SIZE + len(prefix) + 4 + len(slots_key) + slot_count + len(mid) + nbytes


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
