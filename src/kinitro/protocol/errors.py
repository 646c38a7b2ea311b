"""Protocol errors: every decoding failure is a :class:`ProtocolError` with an ErrorCode.

See the tree in :mod:`kinitro.protocol`. Each class has a default ``code``; an instance
may carry a more specific one. Receivers turn these into ``ack(ok=False)`` / ``error``
messages (or close codes) at the edge; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kinitro.core.errors import KinitroError
from kinitro.protocol.common import ErrorCode


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One problem with one field of a message: dotted location and description."""

    loc: str
    msg: str

    def __str__(self) -> str:
        return f"{self.loc or '<message>'}: {self.msg}"


class ProtocolError(KinitroError):
    """Malformed or unacceptable wire data. Always carries an :class:`ErrorCode`."""

    default_code: ClassVar[ErrorCode] = ErrorCode.INVALID_MESSAGE

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        message_type: str | None = None,
        message_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: ErrorCode = code or self.default_code
        #: ``type`` of the offending message, when it could be read.
        self.message_type = message_type
        #: ``id`` of the offending message, when it could be read (use as ``ref_id``).
        self.message_id = message_id


class MalformedFrameError(ProtocolError):
    """Not decodable at all: invalid UTF-8, invalid JSON/msgpack, not an object."""

    default_code = ErrorCode.MALFORMED_FRAME


class FrameTooLargeError(ProtocolError):
    """The frame exceeds the channel's size limit."""

    default_code = ErrorCode.FRAME_TOO_LARGE

    def __init__(self, size: int, limit: int, *, what: str = "frame") -> None:
        super().__init__(f"{what} of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class UnknownMessageTypeError(ProtocolError):
    """The ``type`` (or ``event_type``) discriminator is missing or not known."""

    default_code = ErrorCode.UNKNOWN_MESSAGE_TYPE


class InvalidMessageError(ProtocolError):
    """Known message type, but fields are missing, extra, mistyped or out of range."""

    default_code = ErrorCode.INVALID_MESSAGE

    def __init__(
        self,
        message: str,
        *,
        issues: tuple[FieldIssue, ...] = (),
        code: ErrorCode | None = None,
        message_type: str | None = None,
        message_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, message_type=message_type, message_id=message_id)
        #: Every field problem found (the message text lists the first few).
        self.issues = issues


class UnsupportedVersionError(ProtocolError):
    """A protocol, commitment or spec version this code does not understand."""

    default_code = ErrorCode.UNSUPPORTED_VERSION


class InvalidArrayError(ProtocolError):
    """A binary array with the wrong dtype, shape or byte length."""

    default_code = ErrorCode.INVALID_ARRAY


class NonFiniteValueError(ProtocolError):
    """NaN or infinity where finite numbers are required (e.g. actions)."""

    default_code = ErrorCode.NON_FINITE_VALUE


class CommitmentError(ProtocolError):
    """A chain commitment that cannot be encoded or parsed.

    ``field`` names the offending commitment field (``version``, ``competition_id``,
    ``registry``, ``repo``, ``revision``, ``sha256``) or is ``None`` for the whole text.
    """

    default_code = ErrorCode.INVALID_COMMITMENT

    def __init__(self, field: str | None, problem: str, *, code: ErrorCode | None = None) -> None:
        where = f"commitment field {field!r}" if field else "commitment"
        super().__init__(f"{where}: {problem}", code=code)
        self.field = field
        self.problem = problem


class UnsupportedCommitmentVersionError(CommitmentError, UnsupportedVersionError):
    """The commitment's version prefix is well-formed but not supported."""

    default_code = ErrorCode.UNSUPPORTED_VERSION


class CommitmentTooLongError(CommitmentError):
    """The commitment would exceed (or exceeds) the chain's 128-byte limit."""

    default_code = ErrorCode.COMMITMENT_TOO_LONG
