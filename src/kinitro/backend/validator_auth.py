"""Who may hold a validator session: the sign-in decision, as pure functions.

The socket (:mod:`.validator_ws`) sends ``auth_challenge`` with a single-use nonce, reads
the answer and gathers the :class:`Evidence` (the nonce consumed in the database, the
signature checked, the hotkey's neuron in the metagraph, the benchmark series the active
competitions use). Then :func:`read_response` and :func:`authorize` decide, with no I/O:

* the frame must be an ``auth_response`` of this backend's protocol (a peer of another
  protocol is told so, close 4426, not "invalid message");
* it must answer this connection's nonce, still unused and unexpired (4401);
* the signature must verify for the hotkey (4401);
* the hotkey must be registered with a validator permit or at least ``min_stake`` (4403);
* its evaluator runtime must be accepted (:mod:`.runtimes`, 4426).

The first failing rule refuses: a typed ``error`` then the close code above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kinitro.backend import runtimes
from kinitro.protocol.common import ErrorCode
from kinitro.protocol.errors import ProtocolError
from kinitro.protocol.validator_ws import (
    CLOSE_AUTH_FAILED,
    CLOSE_INCOMPATIBLE,
    CLOSE_NOT_PERMITTED,
    AuthResponse,
    parse_validator_message,
)

if TYPE_CHECKING:
    from kinitro.backend.db.repo_admin import NonceState
    from kinitro.chain.models import Neuron


@dataclass(frozen=True, slots=True)
class Refused:
    """Sign-in refused: the ``error`` to send (``code``, ``message``, ``ref`` the message
    it answers) and the close code."""

    code: ErrorCode
    message: str
    close_code: int
    ref: str | None = None

    @property
    def close_reason(self) -> str:
        """A version refusal says why in the close reason (the peer may exit on it)."""
        if self.close_code == CLOSE_INCOMPATIBLE:
            return f"{self.code.value}: {self.message}"
        return self.code.value


@dataclass(frozen=True, slots=True)
class Admitted:
    """Signed in: the response and the hotkey's uid."""

    response: AuthResponse
    uid: int

    @property
    def hotkey(self) -> str:
        return self.response.hotkey


AuthDecision = Admitted | Refused


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the backend found out about an ``auth_response`` (the I/O, done before)."""

    nonce: str
    """The nonce issued to this connection."""
    nonce_state: NonceState
    """What consuming it found: 'ok', 'unknown', 'used' or 'expired'."""
    signature_valid: bool
    neuron: Neuron | None
    """The hotkey's neuron in the metagraph (None: not registered)."""
    netuid: int
    series_in_use: frozenset[tuple[str, int]] = frozenset()
    """Benchmark series (provider, N) of the active competitions."""


def permitted(neuron: Neuron | None, min_stake: float) -> bool:
    """A neuron that may validate: a validator permit, or at least ``min_stake``."""
    return neuron is not None and (neuron.validator_permit or neuron.stake >= min_stake)


def read_response(raw: str | bytes | None) -> AuthResponse | Refused:
    """The ``auth_response`` in the first frame after the challenge (``raw`` None: none
    came before the challenge expired), or why the sign-in is refused."""
    if raw is None:
        return Refused(
            ErrorCode.AUTH_EXPIRED,
            "no auth_response before the challenge expired",
            CLOSE_AUTH_FAILED,
        )
    try:
        message = parse_validator_message(raw)
    except ProtocolError as exc:
        version = runtimes.peek_protocol_version(raw)
        problem = runtimes.protocol_problem(version) if version is not None else None
        if problem:  # a peer of another protocol: say so, not "invalid message"
            return Refused(
                ErrorCode.UNSUPPORTED_VERSION, problem, CLOSE_INCOMPATIBLE, exc.message_id
            )
        return Refused(
            ErrorCode.AUTH_REQUIRED,
            f"expected auth_response: {exc.message}",
            CLOSE_AUTH_FAILED,
            exc.message_id,
        )
    if not isinstance(message, AuthResponse):
        return Refused(
            ErrorCode.AUTH_REQUIRED,
            f"expected auth_response, got {message.type}",
            CLOSE_AUTH_FAILED,
            message.id,
        )
    if problem := runtimes.protocol_problem(message.protocol_version):
        return Refused(ErrorCode.UNSUPPORTED_VERSION, problem, CLOSE_INCOMPATIBLE, message.id)
    return message


def authorize(
    response: AuthResponse,
    evidence: Evidence,
    *,
    min_stake: float,
    policy: runtimes.RuntimePolicy,
) -> AuthDecision:
    """Admit or refuse a validator by the rules of the module docstring, in that order."""
    ref = response.id
    if response.nonce != evidence.nonce:
        return Refused(
            ErrorCode.AUTH_FAILED,
            "nonce is not the one issued to this connection",
            CLOSE_AUTH_FAILED,
            ref,
        )
    if evidence.nonce_state != "ok":
        expired = evidence.nonce_state == "expired"
        code = ErrorCode.AUTH_EXPIRED if expired else ErrorCode.AUTH_FAILED
        return Refused(code, f"challenge {evidence.nonce_state}", CLOSE_AUTH_FAILED, ref)
    if not evidence.signature_valid:
        return Refused(
            ErrorCode.AUTH_FAILED,
            "signature does not verify for this hotkey",
            CLOSE_AUTH_FAILED,
            ref,
        )
    neuron = evidence.neuron
    if neuron is None:
        return Refused(
            ErrorCode.NOT_PERMITTED,
            f"hotkey is not registered on subnet {evidence.netuid}",
            CLOSE_NOT_PERMITTED,
            ref,
        )
    if not permitted(neuron, min_stake):
        return Refused(
            ErrorCode.NOT_PERMITTED,
            f"hotkey has no validator permit and stake {neuron.stake} < {min_stake}",
            CLOSE_NOT_PERMITTED,
            ref,
        )
    problem = runtimes.check_handshake(response, policy, evidence.series_in_use)
    if problem:
        return Refused(ErrorCode.UNSUPPORTED_VERSION, problem, CLOSE_INCOMPATIBLE, ref)
    return Admitted(response, neuron.uid)
