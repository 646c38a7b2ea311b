"""Realtime WebSocket protocol: round trips, typed rejection, subscription filters."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from kinitro.protocol.common import ErrorCode, JobState
from kinitro.protocol.errors import (
    FrameTooLargeError,
    InvalidMessageError,
    MalformedFrameError,
    ProtocolError,
    UnknownMessageTypeError,
)
from kinitro.protocol.realtime import (
    MAX_CLIENT_FRAME_BYTES,
    ClientMessage,
    EventFilter,
    Events,
    EventType,
    JobStatusEvent,
    RealtimeEvent,
    ServerMessage,
    StatsEvent,
    Subscribe,
    dump_event,
    dump_message,
    dump_snapshot_data,
    events_frame,
    parse_client_message,
    parse_event,
    parse_server_message,
    snapshot_frame,
)

from .strategies import model_strategy


def _members(union: Any) -> list[type[BaseModel]]:
    return list(get_args(get_args(union)[0]))


CLIENT_TYPES = _members(ClientMessage)
SERVER_TYPES = _members(ServerMessage)
EVENT_TYPES = _members(RealtimeEvent)
FAST = settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow], deadline=None)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
HK_A = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
HK_B = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"

any_client = st.one_of([model_strategy(m) for m in CLIENT_TYPES])
any_server = st.one_of([model_strategy(m) for m in SERVER_TYPES])
any_event = st.one_of([model_strategy(m) for m in EVENT_TYPES])

CHANNELS: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], Any], Callable[[Any], str]]] = [
    ("client", any_client, parse_client_message, dump_message),
    ("server", any_server, parse_server_message, dump_message),
    ("event", any_event, parse_event, dump_event),
]
channel_ids = [c[0] for c in CHANNELS]


def test_event_type_enum_matches_union() -> None:
    assert {m.model_fields["event_type"].default for m in EVENT_TYPES} == set(EventType)


@pytest.mark.parametrize("model", CLIENT_TYPES + SERVER_TYPES, ids=lambda m: m.__name__)
@FAST
@given(data=st.data())
def test_every_message_round_trips(model: type[BaseModel], data: st.DataObject) -> None:
    message = data.draw(model_strategy(model))
    text = dump_message(message)  # type: ignore[arg-type]
    parse = parse_client_message if model in CLIENT_TYPES else parse_server_message
    assert parse(text) == message
    assert parse(text.encode()) == message


@pytest.mark.parametrize("model", EVENT_TYPES, ids=lambda m: m.__name__)
@FAST
@given(data=st.data())
def test_every_event_round_trips(model: type[BaseModel], data: st.DataObject) -> None:
    event = data.draw(model_strategy(model))
    assert parse_event(dump_event(event)) == event
    wrapped = Events(events=[event, event])
    assert parse_server_message(dump_message(wrapped)) == wrapped
    # the server's frame of pre-serialised events is the same message
    frame = events_frame([dump_event(event), dump_event(event)])
    assert parse_server_message(frame).events == wrapped.events  # type: ignore[union-attr]


@pytest.mark.parametrize(("name", "strategy", "parse", "dump"), CHANNELS, ids=channel_ids)
@FAST
@given(data=st.data())
def test_garbage_truncation_and_mutation(
    name: str, strategy: Any, parse: Callable[[Any], Any], dump: Callable[[Any], str], data: Any
) -> None:
    with pytest.raises(ProtocolError):
        parse(data.draw(st.binary(max_size=200)))
    text = dump(data.draw(strategy))
    with pytest.raises(MalformedFrameError):
        parse(text[: data.draw(st.integers(0, len(text) - 1))])
    raw = bytearray(text.encode())
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        parse(bytes(raw))
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)


@pytest.mark.parametrize(("name", "strategy", "parse", "dump"), CHANNELS, ids=channel_ids)
@FAST
@given(data=st.data())
def test_unknown_type_and_wrong_field_types(
    name: str, strategy: Any, parse: Callable[[Any], Any], dump: Callable[[Any], str], data: Any
) -> None:
    tag = "event_type" if name == "event" else "type"
    obj = json.loads(dump(data.draw(strategy)))
    bogus = dict(obj, **{tag: "no-such-type"})
    with pytest.raises(UnknownMessageTypeError) as info:
        parse(json.dumps(bogus))
    assert info.value.code is ErrorCode.UNKNOWN_MESSAGE_TYPE

    field = data.draw(st.sampled_from(sorted(k for k in obj if k != tag)))
    value = obj[field]
    obj[field] = (
        "not-an-object"
        if isinstance(value, dict)
        else ([[1], "x"] if value is None else {"bogus": [1]})
    )
    with pytest.raises(InvalidMessageError) as err:
        parse(json.dumps(obj))
    assert err.value.code is ErrorCode.INVALID_MESSAGE
    assert any(i.loc.split(".")[0] == field for i in err.value.issues), err.value.issues


def test_nested_unknown_event_type() -> None:
    frame = {"type": "events", "id": "c" * 32, "events": [{"event_type": "nope", "at": "x"}]}
    with pytest.raises(UnknownMessageTypeError, match=r"event_type.*at events\.0"):
        parse_server_message(json.dumps(frame))


def test_client_frames_are_small() -> None:
    with pytest.raises(FrameTooLargeError):
        parse_client_message("x" * (MAX_CLIENT_FRAME_BYTES + 1))


def _status(job_id: str = "j1", validator: str = HK_A, competition: str = "mt10") -> Any:
    return JobStatusEvent(
        at=NOW,
        job_id=job_id,
        validator_hotkey=validator,
        competition_id=competition,
        miner_hotkey=HK_B,
        state=JobState.RUNNING,
    )


def test_filter_semantics() -> None:
    event = _status()
    assert EventFilter().matches(event) and EventFilter().is_empty
    assert EventFilter(job_id="j1", competition_id="mt10").matches(event)
    assert not EventFilter(job_id="j2").matches(event)
    assert not EventFilter(validator_hotkey=HK_B).matches(event)
    assert EventFilter(miner_hotkey=HK_B).matches(event)
    # an event that does not carry the filtered field is not about that entity
    assert not EventFilter(job_id="j1").matches(StatsEvent(at=NOW, stats={"jobs": {"running": 1}}))
    assert EventFilter().matches(StatsEvent(at=NOW, stats={}))
    # a carried field that is None does not match a set filter
    assert not EventFilter(submission_id="s1").matches(event)


def test_subscribe_event_types() -> None:
    sub = Subscribe(event_types=[EventType.STATS])
    assert sub.matches(StatsEvent(at=NOW, stats={}))
    assert not sub.matches(_status())
    assert Subscribe().matches(_status())


@FAST
@given(any_event, st.data())
def test_filter_built_from_an_event_matches_it(event: Any, data: st.DataObject) -> None:
    carried = {
        k: getattr(event, k)
        for k in EventFilter.model_fields
        if k in type(event).model_fields and getattr(event, k) is not None
    }
    chosen = data.draw(st.sets(st.sampled_from(sorted(carried)))) if carried else set()
    flt = EventFilter(**{k: carried[k] for k in chosen})
    assert flt.matches(event)
    assert Subscribe(event_types=[event.event_type], filters=flt).matches(event)


def test_events_frames_are_never_empty_and_snapshot_frames_parse() -> None:
    with pytest.raises(InvalidMessageError):
        parse_server_message(events_frame([]))
    data = {"stats": {"jobs": {"running": 1}}, "competitions": []}
    snap = parse_server_message(snapshot_frame(dump_snapshot_data(data), "a" * 32))
    assert snap.type == "snapshot" and snap.ref_id == "a" * 32 and snap.data == data
