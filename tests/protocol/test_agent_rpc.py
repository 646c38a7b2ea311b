"""Agent RPC codec: round trips and typed rejection of malformed or hostile frames."""

from __future__ import annotations

import contextlib
import inspect
import math
import struct
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kinitro.protocol import agent_rpc as rpc
from kinitro.protocol.common import ErrorCode
from kinitro_agent.rpc import errors

DTYPE_NAMES = sorted(rpc.DTYPES)
ACTION_SPEC = rpc.ArraySpec("float32", (4,), -1.0, 1.0)
OBS_SPEC = rpc.ArraySpec("float64", (39,))


def body(frame: bytes) -> bytes:
    n = rpc.body_length(frame[: rpc.HEADER_SIZE])
    assert n == len(frame) - rpc.HEADER_SIZE
    return frame[rpc.HEADER_SIZE :]


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    name = draw(st.sampled_from(DTYPE_NAMES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    return draw(hnp.arrays(rpc.DTYPES[name], shape))


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


names = st.text(min_size=1, max_size=20)
ids = st.integers(min_value=0, max_value=2**64 - 1)
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10)
specs = st.builds(
    rpc.ArraySpec,
    st.sampled_from(DTYPE_NAMES),
    st.lists(st.integers(0, 100), max_size=4).map(tuple),
    st.none() | st.floats(allow_nan=False, allow_infinity=False),
    st.none() | st.floats(allow_nan=False, allow_infinity=False),
)
tasks = st.builds(
    rpc.TaskInfo,
    names,
    st.text(max_size=30),
    st.integers(0, 10_000),
    st.dictionaries(st.sampled_from(["camera", "mode", "x"]), scalars, max_size=3),
)
slot_counts = st.integers(1, rpc.MAX_SLOTS)
slot_numbers = st.integers(0, rpc.MAX_SLOTS - 1)


@st.composite
def act_batches(draw: st.DrawFn) -> rpc.ActBatch:
    slots = draw(st.lists(slot_numbers, min_size=1, max_size=8, unique=True))
    name = draw(st.sampled_from(DTYPE_NAMES))
    inner = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    stacked = lambda: hnp.arrays(rpc.DTYPES[name], (len(slots), *inner))  # noqa: E731
    obs = draw(stacked() | st.dictionaries(names, stacked(), min_size=1, max_size=3))
    return rpc.ActBatch(draw(ids), tuple(slots), obs)


requests = st.one_of(
    st.builds(
        rpc.Hello,
        ids,
        specs | st.dictionaries(names, specs, max_size=3),
        specs,
        st.integers(0, 100),
        slot_counts,
    ),
    st.builds(rpc.Reset, ids, tasks, slot_numbers),
    st.builds(rpc.Act, ids, arrays() | st.dictionaries(names, arrays(), max_size=3)),
    act_batches(),
    st.builds(rpc.Close, ids),
)
responses = st.one_of(
    st.builds(rpc.HelloOk, ids, names, st.integers(0, 100), slot_counts),
    st.builds(rpc.ResetOk, ids),
    st.builds(rpc.Action, ids, arrays()),
    st.builds(rpc.Actions, ids, arrays()),
    st.builds(rpc.CloseOk, ids),
    st.builds(
        rpc.Error,
        ids,
        st.sampled_from(sorted(rpc.ERROR_CODES)),
        st.text(max_size=50),
        st.none() | slot_numbers,
    ),
)


def equal(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and same_array(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if hasattr(a, "__slots__") and type(a) is type(b):
        return all(equal(getattr(a, s), getattr(b, s)) for s in a.__slots__)
    return a == b


@given(requests)
def test_request_round_trip(msg: rpc.Request) -> None:
    assert equal(rpc.decode_request(body(rpc.encode(msg))), msg)


@given(responses)
def test_response_round_trip(msg: rpc.Response) -> None:
    assert equal(rpc.decode_response(body(rpc.encode(msg))), msg)


@given(arrays(), ids)
def test_act_fast_path_matches_generic(arr: np.ndarray, i: int) -> None:
    assert rpc.encode_act(i, arr) == rpc.encode(rpc.Act(i, arr))


def test_non_contiguous_and_big_endian_arrays_are_normalised() -> None:
    a = np.arange(12, dtype=">f8").reshape(3, 4)[:, ::2]
    got = rpc.decode_request(body(rpc.encode(rpc.Act(1, a))))
    assert isinstance(got, rpc.Act) and isinstance(got.observation, np.ndarray)
    assert got.observation.dtype == np.dtype("<f8")
    np.testing.assert_array_equal(got.observation, a)


@given(st.binary(max_size=200))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_random_bodies_raise_typed_errors(data: bytes) -> None:
    for decode in (rpc.decode_request, rpc.decode_response):
        with contextlib.suppress(rpc.AgentRpcError):
            decode(data)


@given(requests, st.data())
def test_mutated_frames_raise_typed_errors_only(msg: rpc.Request, data: st.DataObject) -> None:
    raw = bytearray(body(rpc.encode(msg)))
    if raw:
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        try:
            rpc.decode_request(candidate)
            rpc.decode_action(candidate, 0, ACTION_SPEC)
        except rpc.AgentRpcError:
            pass


def test_oversize_frame_rejected_from_header() -> None:
    with pytest.raises(rpc.FrameTooLarge) as exc:
        rpc.body_length(struct.pack(">I", 2**31), limit=1024)
    assert exc.value.size == 2**31 and exc.value.limit == 1024


def test_unknown_type() -> None:
    with pytest.raises(rpc.UnknownMessageType):
        rpc.decode_request(msgpack.packb({"type": "exec", "id": 1}))
    with pytest.raises(rpc.UnknownMessageType):
        rpc.decode_response(msgpack.packb({"type": "act", "id": 1}))


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"type": "act", "id": 1}) + b"\x00",
        b"\xc1",
        b"",
    ],
)
def test_malformed_bodies(payload: bytes) -> None:
    with pytest.raises(rpc.MalformedFrame):
        rpc.decode_request(payload)


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "act"},
        {"type": "act", "id": -1, "observation": None},
        {"type": "act", "id": True},
        {"id": 3},
        {"type": "reset", "id": 1, "task": {"name": "reach-v3", "seed": 42}},
        {"type": "reset", "id": 1, "task": {"name": "reach-v3", "episode_index": 3}},
        {"type": "reset", "id": 1, "task": {"name": "reach-v3", "metadata": {"seed": 1}}},
        {"type": "hello", "id": 1, "observation_spec": {"dtype": "float64"}},
        {"type": "act", "id": 1, "observation": {"fields": 3}},
    ],
)
def test_invalid_messages(payload: dict[str, object]) -> None:
    with pytest.raises(rpc.MessageError):
        rpc.decode_request(msgpack.packb(payload))


def test_seed_can_never_be_sent() -> None:
    with pytest.raises(rpc.InvalidMessage):
        rpc.TaskInfo("reach-v3", metadata={"episode_seed": 1})


@pytest.mark.parametrize(
    "arr",
    [
        {"dtype": "float128", "shape": [1], "data": b"\0" * 16},
        {"dtype": "float32", "shape": [2], "data": b"\0" * 4},
        {"dtype": "float32", "shape": [-1], "data": b""},
        {"dtype": "float32", "shape": [1] * 9, "data": b"\0" * 4},
        {"dtype": "float32", "shape": "4", "data": b"\0" * 16},
        {"dtype": "float32", "shape": [4], "data": "text"},
        {"dtype": "float32", "shape": [4], "data": b"\0" * 16, "extra": 1},
        {"dtype": ["float32"], "shape": [4], "data": b"\0" * 16},
        [1.0, 2.0],
    ],
)
def test_invalid_arrays(arr: object) -> None:
    with pytest.raises(rpc.InvalidArray):
        rpc.decode_request(msgpack.packb({"type": "act", "id": 1, "observation": arr}))


def action_frame(arr: np.ndarray, i: int = 5) -> bytes:
    return body(rpc.encode(rpc.Action(i, arr)))


def test_decode_action_accepts_exact_spec() -> None:
    a = np.array([0.1, -0.2, 0.3, 1.0], np.float32)
    np.testing.assert_array_equal(rpc.decode_action(action_frame(a), 5, ACTION_SPEC), a)


@pytest.mark.parametrize(
    ("arr", "error"),
    [
        (np.array([np.nan, 0, 0, 0], np.float32), rpc.NonFiniteValue),
        (np.array([np.inf, 0, 0, 0], np.float32), rpc.NonFiniteValue),
        (np.array([-np.inf, 0, 0, 0], np.float32), rpc.NonFiniteValue),
        (np.zeros(3, np.float32), rpc.WrongShape),
        (np.zeros((4, 1), np.float32), rpc.WrongShape),
        (np.zeros(4, np.float64), rpc.WrongDtype),
        (np.zeros(4, np.int32), rpc.WrongDtype),
    ],
)
def test_decode_action_rejects_spec_violations(arr: np.ndarray, error: type[Exception]) -> None:
    with pytest.raises(error) as exc:
        rpc.decode_action(action_frame(arr), 5, ACTION_SPEC)
    assert isinstance(exc.value, rpc.ArraySpecMismatch) and exc.value.what == "action"


def test_decode_action_checks_request_id_and_reports_agent_errors() -> None:
    with pytest.raises(rpc.InvalidMessage):
        rpc.decode_action(action_frame(np.zeros(4, np.float32), 4), 5, ACTION_SPEC)
    err = body(rpc.encode(rpc.Error(5, "agent_exception", "boom")))
    with pytest.raises(rpc.AgentReportedError) as exc:
        rpc.decode_action(err, 5, ACTION_SPEC)
    assert exc.value.agent_code == "agent_exception" and exc.value.agent_message == "boom"


@given(hnp.arrays(np.float64, 4, elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_coerce_action(values: np.ndarray) -> None:
    with np.errstate(over="ignore"):
        finite32 = np.isfinite(values.astype(np.float32)).all()
    if finite32:
        out = rpc.coerce_action(values, ACTION_SPEC)
        assert out.dtype == np.float32 and out.shape == (4,)
    else:  # includes float64 values that overflow float32: rejected, never sent
        with pytest.raises(rpc.NonFiniteValue):
            rpc.coerce_action(values, ACTION_SPEC)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (np.zeros(4, np.complex64), rpc.WrongDtype),
        (np.array(["a", "b", "c", "d"]), rpc.WrongDtype),
        ([object()] * 4, rpc.WrongDtype),
        ([0.0, 0.0], rpc.WrongShape),
        ([[0.0] * 4], rpc.WrongShape),
        ([0.0, math.nan, 0.0, 0.0], rpc.NonFiniteValue),
    ],
)
def test_coerce_action_rejections(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        rpc.coerce_action(value, ACTION_SPEC)


def test_check_observation() -> None:
    rpc.check_observation(np.zeros(39), OBS_SPEC)
    with pytest.raises(rpc.WrongShape):
        rpc.check_observation(np.zeros(38), OBS_SPEC)
    dict_spec = {"state": OBS_SPEC, "rgb": rpc.ArraySpec("uint8", (84, 84, 3))}
    rpc.check_observation(
        {"state": np.zeros(39), "rgb": np.zeros((84, 84, 3), np.uint8)}, dict_spec
    )
    with pytest.raises(rpc.WrongDtype):
        rpc.check_observation({"state": np.zeros(39), "rgb": np.zeros((84, 84, 3))}, dict_spec)


def test_errors_carry_protocol_error_codes() -> None:
    """The agent side cannot import ``ErrorCode`` (it runs without Kinitro): its codes are
    plain strings that must stay values of that one vocabulary."""

    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, rpc.AgentRpcError):
            assert ErrorCode(cls.default_code), cls
    with pytest.raises(rpc.NonFiniteValue) as exc:
        rpc.check_action(np.array([np.nan] * 4, np.float32), ACTION_SPEC)
    assert exc.value.code == ErrorCode.NON_FINITE_VALUE
    with pytest.raises(rpc.FrameTooLarge) as exc2:
        rpc.body_length(b"\xff\xff\xff\xff", limit=10)
    assert exc2.value.code == ErrorCode.FRAME_TOO_LARGE
    with pytest.raises(rpc.WrongDtype) as exc3:
        rpc.check_action(np.zeros(4), ACTION_SPEC)
    assert exc3.value.code == ErrorCode.INVALID_ARRAY


HOT = rpc.HotPath(OBS_SPEC, ACTION_SPEC)


def parse(fn: object, frame: bytes, *args: object) -> object:
    """Put ``frame`` where a socket would have received it, then run a fast parser."""
    HOT.recv_buffer[: len(frame)] = frame
    return fn(len(frame), *args)  # type: ignore[operator]


def outcome(fn: object, *args: object) -> tuple[object, ...]:
    try:
        return ("ok", fn(*args))  # type: ignore[operator]
    except rpc.AgentRpcError as exc:
        return ("error", type(exc))


def mutate_and_decode(
    data: st.DataObject, raw: bytearray, fast: object, slow: object, *, min_flips: int
) -> tuple[tuple[object, ...], tuple[object, ...]] | None:
    """Overwrite ``min_flips``..3 random bytes of the frame ``raw``; the outcomes of the
    fast and the generic parser on it, or ``None`` if the fast path does not recognise it."""
    for _ in range(data.draw(st.integers(min_flips, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    f = bytes(raw)
    fast_out = outcome(fast, f)
    if fast_out[0] == "ok" and fast_out[1] is None:
        return None
    return fast_out, outcome(slow, f)


@given(hnp.arrays(np.float64, 39), st.integers(0, 2**32 - 1))
def test_hot_frames_are_plain_msgpack(obs: np.ndarray, i: int) -> None:
    """Fast-path frames decode with the generic codec (any msgpack decoder) to the same
    message, and the fast parsers recognise them."""
    frame = bytes(HOT.act_frame(i, obs))
    assert equal(rpc.decode_request(body(frame)), rpc.Act(i, obs))
    got = parse(HOT.parse_act, frame)
    assert got is not None and equal(got, rpc.Act(i, obs))
    act = np.array([0.5, -1, 0, 1], np.float32)
    frame = bytes(HOT.action_frame(i, act))
    assert equal(rpc.decode_response(body(frame)), rpc.Action(i, act))
    parsed = parse(HOT.parse_action, frame, i)
    assert parsed is not None and same_array(parsed, act)
    assert parse(HOT.parse_action, frame, i + 1) is None  # wrong id: slow path


def test_hot_parsers_return_copies() -> None:
    frame = bytes(HOT.action_frame(7, np.ones(4, np.float32)))
    got = parse(HOT.parse_action, frame, 7)
    parse(HOT.parse_action, bytes(HOT.action_frame(8, np.zeros(4, np.float32))), 8)  # reuse
    assert got is not None and got.tolist() == [1, 1, 1, 1]


@given(st.data())
def test_hot_path_never_accepts_what_the_generic_codec_rejects(data: st.DataObject) -> None:
    i = data.draw(st.integers(0, 2**20))
    obs = data.draw(hnp.arrays(np.float64, 39))
    act = data.draw(hnp.arrays(np.float32, 4))
    for raw, fast, slow in (
        (
            bytearray(HOT.act_frame(i, obs)),
            lambda f: parse(HOT.parse_act, f),
            lambda f: rpc.decode_request(body(f)),
        ),
        (
            bytearray(HOT.action_frame(i, act)),
            lambda f: parse(HOT.parse_action, f, i),
            lambda f: rpc.decode_action(body(f), i, ACTION_SPEC),
        ),
    ):
        outcomes = mutate_and_decode(data, raw, fast, slow, min_flips=0)
        if outcomes is None:
            continue  # not recognised: the caller takes the generic path
        fast_out, slow_out = outcomes
        assert fast_out[0] == slow_out[0]
        if fast_out[0] == "ok":
            assert equal(fast_out[1], slow_out[1])
        else:
            assert fast_out == slow_out  # the same specific error (NaN/Inf)


@given(st.data())
def test_batch_hot_path_agrees_with_the_generic_codec(data: st.DataObject) -> None:
    """act_batch/actions fast-path frames are plain msgpack; mutated ones are either not
    recognised (generic path) or decoded exactly as the generic codec does."""
    slots = tuple(data.draw(st.lists(slot_numbers, min_size=1, max_size=16, unique=True)))
    n = len(slots)
    i = data.draw(st.integers(0, 2**20))
    obs = data.draw(hnp.arrays(np.float64, (n, 39)))
    acts = data.draw(hnp.arrays(np.float32, (n, 4), elements=st.floats(-1, 1, width=32)))
    frame = bytes(HOT.act_batch_frame(i, slots, list(obs)))
    assert bytes(HOT.act_batch_frame(i, slots, obs)) == frame  # stacked: the same frame
    assert equal(rpc.decode_request(body(frame)), rpc.ActBatch(i, slots, obs))
    assert equal(parse(HOT.parse_act_batch, frame), rpc.ActBatch(i, slots, obs))
    template = HOT.actions_out(n)
    template.array[...] = acts
    reply = bytes(template.with_id(i))
    got = parse(HOT.parse_actions, reply, i, n)
    assert got is not None and same_array(got, acts)
    assert same_array(rpc.decode_actions(body(reply), i, ACTION_SPEC, slots), acts)
    for raw, fast, slow in (
        (
            bytearray(frame),
            lambda f: parse(HOT.parse_act_batch, f),
            lambda f: rpc.decode_request(body(f)),
        ),
        (
            bytearray(reply),
            lambda f: parse(HOT.parse_actions, f, i, n),
            lambda f: rpc.decode_actions(body(f), i, ACTION_SPEC, slots),
        ),
    ):
        outcomes = mutate_and_decode(data, raw, fast, slow, min_flips=1)
        if outcomes is None:
            continue  # not recognised: the caller takes the generic path
        fast_out, slow_out = outcomes
        assert fast_out[0] == "ok"  # the fast parsers never raise: they defer
        assert slow_out[0] == "ok" and equal(fast_out[1], slow_out[1])


def test_batch_frame_sends_other_stackings_through_the_generic_codec() -> None:
    """A stacked array the fixed layout cannot carry (wrong count, dtype or row shape) is
    encoded as it is, so the agent's decoder names the problem."""
    slots = (0, 1, 2)
    too_few = bytes(HOT.act_batch_frame(1, slots, np.zeros((2, 39))))
    with pytest.raises(rpc.InvalidMessage, match="must stack 3 observations"):
        rpc.decode_request(body(too_few))
    for stacked in (np.zeros((3, 39), np.float32), np.zeros((3, 40))):
        got = rpc.decode_request(body(bytes(HOT.act_batch_frame(1, slots, stacked))))
        assert isinstance(got, rpc.ActBatch) and same_array(got.observations, stacked)


def test_hot_path_rejects_non_finite_actions() -> None:
    frame = bytes(HOT.action_frame(3, np.array([0, np.nan, 0, 0], np.float32)))
    with pytest.raises(rpc.NonFiniteValue):
        parse(HOT.parse_action, frame, 3)


def test_hot_path_coerce() -> None:
    a = np.zeros(4, np.float32)
    assert HOT.coerce_action(a) is a
    np.testing.assert_array_equal(HOT.coerce_action([0, 0, 0, 0]), a)
    with pytest.raises(rpc.WrongShape):
        HOT.coerce_action(np.zeros(5, np.float32))
    # A matching array passes unchecked for NaN/Inf: the client rejects it on receipt.
    bad = np.array([0, np.inf, 0, 0], np.float32)
    assert HOT.coerce_action(bad) is bad
    with pytest.raises(rpc.NonFiniteValue):
        parse(HOT.parse_action, bytes(HOT.action_frame(1, bad)), 1)
    with pytest.raises(rpc.NonFiniteValue):  # converted values are fully checked
        HOT.coerce_action([0.0, float("nan"), 0.0, 0.0])


def test_finiteness_check_of_large_finite_values() -> None:
    spec = rpc.ArraySpec("float64", (2,))
    hot = rpc.HotPath(OBS_SPEC, spec)
    big = np.array([1e308, 1e308])  # finite, but its sum overflows: the exact check decides
    frame = bytes(hot.action_frame(1, big))
    hot.recv_buffer[: len(frame)] = frame
    got = hot.parse_action(len(frame), 1)
    assert got is not None and got.tolist() == [1e308, 1e308]


def test_other_layouts_take_the_generic_path() -> None:
    # A valid frame from another encoder (minimal int encoding) is not the fast layout.
    frame = rpc.encode(rpc.Act(5, np.zeros(39)))
    assert parse(HOT.parse_act, frame) is None
    assert HOT.act_frame(2**40, np.zeros(39)) == rpc.encode(rpc.Act(2**40, np.zeros(39)))
    dict_hot = rpc.HotPath({"state": OBS_SPEC}, ACTION_SPEC)
    obs = {"state": np.zeros(39)}
    assert dict_hot.act_frame(1, obs) == rpc.encode(rpc.Act(1, obs))


def test_wire_example_in_docs() -> None:
    """docs/agent-rpc.md shows this exact frame; keep the document honest."""

    frame = rpc.encode(rpc.Act(3, np.array([1.0, 2.0], np.float32)))
    assert frame[:4] == b"\x00\x00\x00\x40" and len(frame) == 4 + 64
    assert frame[4:].hex(" ").endswith("c4 08 00 00 80 3f 00 00 00 40")
    doc = (Path(__file__).parents[2] / "docs" / "agent-rpc.md").read_text()
    assert "c4 08 00 00 80 3f 00 00 00 40" in doc and "(64-byte body)" in doc
    for name in rpc.DTYPES:
        assert f"`{name}`" in doc
    for code in rpc.ERROR_CODES:
        assert f"`{code}`" in doc
