"""Specs and arrays: what the evaluator and the agent agree on in ``hello``.

:class:`ArraySpec` (dtype, shape, optional bounds, like a Gymnasium ``Box``), observation
specs (one array or named fields), :class:`TaskInfo` (what ``reset`` tells the agent:
never a seed), and the array codec with its checks (exact dtype/shape, finite actions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from kinitro_agent.rpc.errors import (
    InvalidArray,
    InvalidMessage,
    NonFiniteValue,
    WrongDtype,
    WrongShape,
)
from kinitro_agent.rpc.wire import (
    DTYPE_NAMES,
    DTYPES,
    FLOAT_KINDS,
    MAX_NDIM,
    Array,
    Observation,
    Scalar,
    as_map,
    dtype_label,
    get_field,
    get_opt_number,
    get_uint,
)


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
        m = as_map(obj, what)
        dtype = get_field(m, "dtype", str, what)
        shape = get_field(m, "shape", list, what)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InvalidMessage(f"{what}.shape must be a list of integers")
        low = get_opt_number(m, "low", what)
        high = get_opt_number(m, "high", what)
        try:
            return cls(dtype, tuple(shape), low, high)
        except InvalidArray as exc:
            raise InvalidMessage(f"{what}: {exc}") from exc

    def check(self, arr: Array, what: str) -> None:
        """Raise :class:`WrongDtype` / :class:`WrongShape` unless ``arr`` matches exactly."""
        if arr.dtype != DTYPES[self.dtype]:
            raise WrongDtype(what, f"dtype {dtype_label(arr.dtype)}, expected {self.dtype}")
        if arr.shape != self.shape:
            raise WrongShape(what, f"shape {arr.shape}, expected {self.shape}")


ObservationSpec: TypeAlias = "ArraySpec | dict[str, ArraySpec]"


def observation_spec_to_wire(spec: ObservationSpec) -> dict[str, Any]:
    if isinstance(spec, ArraySpec):
        return spec.to_wire()
    return {"fields": {k: v.to_wire() for k, v in spec.items()}}


def observation_spec_from_wire(obj: object) -> ObservationSpec:
    m = as_map(obj, "observation_spec")
    if "fields" in m:
        fields = as_map(m["fields"], "observation_spec.fields")
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
        m = as_map(obj, "task")
        unknown = set(m) - {"name", "benchmark_id", "max_steps", "metadata"}
        if unknown:
            raise InvalidMessage(f"task has unknown fields {sorted(map(str, unknown))}")
        metadata = as_map(m.get("metadata", {}), "task.metadata")
        for k, v in metadata.items():
            if not isinstance(k, str) or not (v is None or isinstance(v, str | int | float)):
                raise InvalidMessage("task.metadata must map strings to scalars")
        return cls(
            name=get_field(m, "name", str, "task"),
            benchmark_id=get_field(m, "benchmark_id", str, "task", default=""),
            max_steps=get_uint(m, "max_steps", "task", default=0),
            metadata=dict(metadata),
        )


def encode_array(arr: Array) -> dict[str, Any]:
    """Array → wire map. Non-contiguous or big-endian arrays are converted first."""
    name = DTYPE_NAMES.get(arr.dtype)
    if name is None:
        le = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        name = DTYPE_NAMES.get(le)
        if name is None:
            raise InvalidArray(f"dtype {dtype_label(arr.dtype)} cannot be sent")
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
    if arr.dtype.kind in FLOAT_KINDS and not np.isfinite(arr).all():
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
            raise WrongDtype("action", f"dtype {dtype_label(arr.dtype)} cannot become {spec.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(target)  # overflow → inf, caught by check_finite below
    if arr.shape != spec.shape:
        raise WrongShape("action", f"shape {arr.shape}, expected {spec.shape}")
    check_finite(arr, "action")
    return arr


def encode_observation(obs: Observation) -> Any:
    if isinstance(obs, dict):
        return {"fields": {k: encode_array(v) for k, v in obs.items()}}
    return encode_array(obs)


def decode_observation(obj: object) -> Observation:
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
