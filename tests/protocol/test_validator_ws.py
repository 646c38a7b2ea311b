"""Validator WebSocket protocol: round trips and typed rejection of bad frames."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from kinitro.protocol.common import PROTOCOL_VERSION, ErrorCode, JobState
from kinitro.protocol.errors import (
    FrameTooLargeError,
    InvalidMessageError,
    MalformedFrameError,
    ProtocolError,
    UnknownMessageTypeError,
)
from kinitro.protocol.validator_ws import (
    ACKED_TYPES,
    BACKEND_TO_VALIDATOR,
    MAX_FRAME_BYTES,
    VALIDATOR_TO_BACKEND,
    Ack,
    AuthResponse,
    EpisodeSteps,
    EvalResult,
    Heartbeat,
    JobStatus,
    StepSample,
    ValidatorMessage,
    auth_payload,
    dump_message,
    parse_validator_message,
    requires_ack,
)

from .strategies import model_strategy

MESSAGE_TYPES: list[type[BaseModel]] = list(get_args(get_args(ValidatorMessage)[0]))
TYPE_NAMES = {m.model_fields["type"].default for m in MESSAGE_TYPES}
any_message = st.one_of([model_strategy(m) for m in MESSAGE_TYPES])
FAST = settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("model", MESSAGE_TYPES, ids=lambda m: m.__name__)
@FAST
@given(data=st.data())
def test_every_message_round_trips(model: type[BaseModel], data: st.DataObject) -> None:
    message = data.draw(model_strategy(model))
    text = dump_message(message)
    parsed = parse_validator_message(text)
    assert type(parsed) is model
    assert parsed == message
    assert parse_validator_message(text.encode()) == message
    assert dump_message(parsed) == text


def test_directions_cover_every_type() -> None:
    assert BACKEND_TO_VALIDATOR | VALIDATOR_TO_BACKEND == TYPE_NAMES
    assert ACKED_TYPES <= TYPE_NAMES


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_rejected_with_typed_error(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_validator_message(data)
    assert info.value.code in {
        ErrorCode.MALFORMED_FRAME,
        ErrorCode.UNKNOWN_MESSAGE_TYPE,
        ErrorCode.INVALID_MESSAGE,
    }


@FAST
@given(any_message, st.data())
def test_truncated_frames_are_malformed(message: Any, data: st.DataObject) -> None:
    text = dump_message(message)
    cut = data.draw(st.integers(0, len(text) - 1))
    with pytest.raises(MalformedFrameError) as info:
        parse_validator_message(text[:cut])
    assert info.value.code is ErrorCode.MALFORMED_FRAME


@FAST
@given(any_message, st.data())
def test_mutated_frames_never_escape(message: Any, data: st.DataObject) -> None:
    raw = bytearray(dump_message(message).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        parsed = parse_validator_message(bytes(raw))
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)
    else:  # a mutation may still be a valid message: then it must round-trip
        assert parse_validator_message(dump_message(parsed)) == parsed


@FAST
@given(any_message, st.text(max_size=20).filter(lambda t: t not in TYPE_NAMES))
def test_unknown_type(message: Any, bogus: str) -> None:
    obj = json.loads(dump_message(message))
    obj["type"] = bogus
    with pytest.raises(UnknownMessageTypeError) as info:
        parse_validator_message(json.dumps(obj))
    assert info.value.code is ErrorCode.UNKNOWN_MESSAGE_TYPE
    assert info.value.message_type == bogus
    assert info.value.message_id == message.id


def test_missing_type() -> None:
    with pytest.raises(UnknownMessageTypeError, match="no 'type'"):
        parse_validator_message('{"id": "00000000000000000000000000000000"}')


def _wrong_type(value: Any) -> Any:
    """A JSON value of a type the field cannot accept."""
    if isinstance(value, dict):
        return "not-an-object"
    if value is None:
        return [[1], "x"]
    return {"bogus": [1]}


@FAST
@given(any_message, st.data())
def test_wrong_field_types_rejected(message: Any, data: st.DataObject) -> None:
    obj = json.loads(dump_message(message))
    field = data.draw(st.sampled_from(sorted(k for k in obj if k != "type")))
    obj[field] = _wrong_type(obj[field])
    with pytest.raises(InvalidMessageError) as info:
        parse_validator_message(json.dumps(obj))
    assert info.value.code is ErrorCode.INVALID_MESSAGE
    assert any(i.loc.split(".")[0] == field for i in info.value.issues), info.value.issues
    assert info.value.message_type == message.type


@FAST
@given(any_message, st.data())
def test_missing_required_field_rejected(message: Any, data: st.DataObject) -> None:
    obj = json.loads(dump_message(message))
    model = type(message)
    required = [k for k, f in model.model_fields.items() if f.is_required()] + ["id"]
    field = data.draw(st.sampled_from(required))
    del obj[field]
    with pytest.raises(InvalidMessageError) as info:
        parse_validator_message(json.dumps(obj))
    assert field in str(info.value)


@FAST
@given(any_message)
def test_extra_field_rejected(message: Any) -> None:
    obj = json.loads(dump_message(message))
    obj["surprise"] = 1
    with pytest.raises(InvalidMessageError, match="surprise"):
        parse_validator_message(json.dumps(obj))


def _heartbeat(**extra: Any) -> dict[str, Any]:
    return {"type": "heartbeat", "id": "a" * 32, "sent_at": "2026-01-01T00:00:00Z"} | extra


@pytest.mark.parametrize(
    "obj",
    [
        _heartbeat(sent_at="2026-01-01T00:00:00"),  # naive
        _heartbeat(sent_at="0001-01-01T00:00:00+01:00"),  # overflows once in UTC
        _heartbeat(queue_depth=-1),
        _heartbeat(queue_depth="3"),  # strict: no string → int coercion
        _heartbeat(queue_depth=1.5),
        _heartbeat(id="A" * 32),
        _heartbeat(id=""),
    ],
)
def test_specific_invalid_values(obj: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessageError):
        parse_validator_message(json.dumps(obj))


def test_non_finite_floats_rejected() -> None:
    head = {"type": "set_weights", "id": "b" * 32, "weights_id": "w", "netuid": 1}
    tail = '"computed_at":"2026-01-01T00:00:00Z"}'
    for bad in ("NaN", "Infinity", "-Infinity", "1e999"):
        frame = json.dumps(head)[:-1] + ',"weights":{"1":' + bad + "}," + tail
        with pytest.raises(ProtocolError):
            parse_validator_message(frame)


def test_message_id_generated_locally_but_required_on_the_wire() -> None:
    a, b = Heartbeat(sent_at=NOW), Heartbeat(sent_at=NOW)
    assert a.id != b.id and len(a.id) == 32
    obj = json.loads(dump_message(a))
    del obj["id"]
    with pytest.raises(InvalidMessageError, match="id"):
        parse_validator_message(json.dumps(obj))


def test_oversize_frames() -> None:
    with pytest.raises(FrameTooLargeError) as info:
        parse_validator_message(b" " * (MAX_FRAME_BYTES + 1))
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    sample = StepSample(
        step=0, observation=[0.123456789] * 60_000, action=[0.0] * 4, reward=0, success=False
    )
    big = EpisodeSteps(job_id="j", episode_index=0, batch_index=0, samples=[sample] * 8)
    with pytest.raises(FrameTooLargeError):
        dump_message(big)


def test_non_text_input_rejected() -> None:
    with pytest.raises(MalformedFrameError):
        parse_validator_message(123)  # type: ignore[arg-type]
    with pytest.raises(MalformedFrameError):
        parse_validator_message("\ud800")


def test_ack_rules() -> None:
    hb = Heartbeat(sent_at=NOW)
    assert Ack.of(hb).ack_id == hb.id and Ack.of(hb).ok
    nack = Ack.reject(hb.id, ErrorCode.CONFLICT, "different content")
    assert not nack.ok and nack.error_code is ErrorCode.CONFLICT
    with pytest.raises(ValidationError):
        Ack(ack_id=hb.id, ok=False)
    with pytest.raises(ValidationError):
        Ack(ack_id=hb.id, ok=True, error_code=ErrorCode.CONFLICT)


def test_natural_keys_and_ack_requirement() -> None:
    status = JobStatus(job_id="j1", state=JobState.RUNNING, seq=3, at=NOW)
    assert status.natural_key("hk") == ("j1", "hk", 3)
    assert requires_ack(status)
    assert not requires_ack(Heartbeat(sent_at=NOW))


def test_eval_result_must_be_terminal_with_metrics_when_completed() -> None:
    base = {"job_id": "j", "started_at": NOW, "finished_at": NOW, "evaluator_version": "1"}
    with pytest.raises(ValidationError, match="terminal"):
        EvalResult(state=JobState.RUNNING, **base)
    with pytest.raises(ValidationError, match="metrics"):
        EvalResult(state=JobState.COMPLETED, **base)
    assert EvalResult(state=JobState.FAILED, error="boom", **base).natural_key("hk") == ("j", "hk")


def test_auth_payload() -> None:
    hotkey = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    assert auth_payload("ab" * 16, hotkey) == f"kinitro-auth:{'ab' * 16}:{hotkey}".encode()
    resp = AuthResponse(
        hotkey=hotkey, nonce="ab" * 16, signature="00" * 64, validator_version="0.1.0"
    )
    assert resp.signed_payload() == auth_payload("ab" * 16, hotkey)
    assert resp.protocol_version == PROTOCOL_VERSION and resp.lite is False
