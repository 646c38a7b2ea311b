"""Validator sign-in rules (pure: kinitro.backend.validator_auth, no socket, no database)."""

from __future__ import annotations

import json
from dataclasses import replace

from kinitro.backend.runtimes import RuntimePolicy
from kinitro.backend.validator_auth import (
    Admitted,
    Evidence,
    Refused,
    authorize,
    permitted,
    read_response,
)
from kinitro.chain.models import Neuron
from kinitro.protocol.common import PROTOCOL_VERSION, ErrorCode
from kinitro.protocol.runtime import RuntimeVersions
from kinitro.protocol.validator_ws import (
    CLOSE_AUTH_FAILED,
    CLOSE_INCOMPATIBLE,
    CLOSE_NOT_PERMITTED,
    AuthResponse,
    Heartbeat,
    dump_message,
)

HOTKEY = "5" + "F" * 47
NONCE = "ab" * 32
POLICY = RuntimePolicy({"mujoco": ("3.3.0",)})
RUNTIME = RuntimeVersions(simulator={"mujoco": "3.3.0"}, benchmarks={"metaworld": 3})
PERMITTED = Neuron(uid=7, hotkey=HOTKEY, coldkey=HOTKEY, stake=0.0, validator_permit=True)


def _response(**changes: object) -> AuthResponse:
    fields: dict[str, object] = {
        "hotkey": HOTKEY,
        "nonce": NONCE,
        "signature": "0" * 128,
        "validator_version": "test",
        "runtime": RUNTIME,
    }
    return AuthResponse.model_validate({**fields, **changes})


def _evidence(**changes: object) -> Evidence:
    evidence = Evidence(
        nonce=NONCE,
        nonce_state="ok",
        signature_valid=True,
        neuron=PERMITTED,
        netuid=2,
        series_in_use=frozenset({("metaworld", 3)}),
    )
    return replace(evidence, **changes)


RESPONSE = _response()


def _decide(response: AuthResponse = RESPONSE, **evidence: object) -> Admitted | Refused:
    return authorize(response, _evidence(**evidence), min_stake=1000.0, policy=POLICY)


def test_a_permitted_validator_with_an_accepted_runtime_is_admitted() -> None:
    decision = _decide()
    assert isinstance(decision, Admitted)
    assert (decision.hotkey, decision.uid) == (HOTKEY, 7)


def test_enough_stake_stands_in_for_a_permit() -> None:
    staked = replace(PERMITTED, validator_permit=False, stake=1000.0)
    assert isinstance(_decide(neuron=staked), Admitted)
    assert permitted(staked, 1000.0) and not permitted(staked, 1000.5)
    assert not permitted(None, 0.0)


def test_each_rule_refuses_with_its_code_and_close_code() -> None:
    poor = replace(PERMITTED, validator_permit=False, stake=10.0)
    cases: list[tuple[Admitted | Refused, ErrorCode, int, str]] = [
        (
            _decide(_response(nonce="cd" * 32)),
            ErrorCode.AUTH_FAILED,
            CLOSE_AUTH_FAILED,
            "nonce is not the one issued to this connection",
        ),
        (
            _decide(nonce_state="expired"),
            ErrorCode.AUTH_EXPIRED,
            CLOSE_AUTH_FAILED,
            "challenge expired",
        ),
        (_decide(nonce_state="used"), ErrorCode.AUTH_FAILED, CLOSE_AUTH_FAILED, "challenge used"),
        (
            _decide(signature_valid=False),
            ErrorCode.AUTH_FAILED,
            CLOSE_AUTH_FAILED,
            "signature does not verify for this hotkey",
        ),
        (
            _decide(neuron=None),
            ErrorCode.NOT_PERMITTED,
            CLOSE_NOT_PERMITTED,
            "hotkey is not registered on subnet 2",
        ),
        (
            _decide(neuron=poor),
            ErrorCode.NOT_PERMITTED,
            CLOSE_NOT_PERMITTED,
            "hotkey has no validator permit and stake 10.0 < 1000.0",
        ),
    ]
    for decision, code, close_code, message in cases:
        assert isinstance(decision, Refused)
        assert (decision.code, decision.close_code, decision.message) == (code, close_code, message)
        assert decision.close_reason == code.value


def test_the_first_failing_rule_decides() -> None:
    decision = _decide(nonce_state="used", signature_valid=False, neuron=None)
    assert isinstance(decision, Refused) and decision.message == "challenge used"
    assert decision.ref == RESPONSE.id  # the error answers the auth_response


def test_runtime_refusals_say_why_in_the_close_reason() -> None:
    old = RuntimeVersions(simulator={"mujoco": "3.1.0"}, benchmarks={"metaworld": 3})
    for response, evidence, words in [
        (_response(runtime=old), {}, "mujoco 3.1.0 is not accepted"),
        (_response(runtime=None), {}, "states no evaluator runtime"),
        (_response(), {"series_in_use": frozenset({("metaworld", 4)})}, "-v4"),
    ]:
        decision = _decide(response, **evidence)
        assert isinstance(decision, Refused)
        assert decision.code is ErrorCode.UNSUPPORTED_VERSION
        assert decision.close_code == CLOSE_INCOMPATIBLE
        assert words in decision.message
        assert decision.close_reason == f"unsupported_version: {decision.message}"
    # a lite validator runs no evaluator: only its protocol is checked
    assert isinstance(_decide(_response(runtime=None, lite=True)), Admitted)


def test_read_response_refuses_silence_garbage_other_messages_and_other_protocols() -> None:
    silent = read_response(None)
    assert isinstance(silent, Refused) and silent.code is ErrorCode.AUTH_EXPIRED
    garbage = read_response(b"\x00not json")
    assert isinstance(garbage, Refused) and garbage.code is ErrorCode.AUTH_REQUIRED
    heartbeat = Heartbeat.model_validate({"sent_at": "2026-01-01T00:00:00Z"})
    other = read_response(dump_message(heartbeat))
    assert isinstance(other, Refused)
    assert other.code is ErrorCode.AUTH_REQUIRED and other.ref == heartbeat.id
    assert other.message == "expected auth_response, got heartbeat"
    future = json.loads(dump_message(_response()))
    future.update(protocol_version=PROTOCOL_VERSION + 1, surprise=True)  # unparseable now
    newer = read_response(json.dumps(future))
    assert isinstance(newer, Refused) and newer.close_code == CLOSE_INCOMPATIBLE
    assert f"speaks protocol {PROTOCOL_VERSION + 1}" in newer.message
    assert read_response(dump_message(RESPONSE)) == RESPONSE
