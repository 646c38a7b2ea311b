"""The agent RPC's exception tree (see :mod:`kinitro_agent.rpc` for the picture).

Every malformed input raises a specific subclass of :class:`AgentRpcError`. Its ``code``
is a value of Kinitro's ``ErrorCode`` (``malformed_frame``, ``frame_too_large``, …) kept
as a plain string: this distribution runs inside the sandbox and imports nothing of
``kinitro``.
"""

from __future__ import annotations

from typing import ClassVar


class AgentRpcError(Exception):
    """Root of the agent RPC errors. ``.code`` names the failure with a value of Kinitro's
    ``ErrorCode`` vocabulary (``kinitro.protocol.common``; a test keeps the two equal)."""

    default_code: ClassVar[str] = "invalid_message"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code: str = code or self.default_code


class FrameError(AgentRpcError):
    """The byte stream is not a valid sequence of frames."""


class FrameTooLarge(FrameError):
    """A frame declares a body longer than the maximum."""

    default_code = "frame_too_large"

    def __init__(self, size: int, limit: int, *, what: str = "frame") -> None:
        super().__init__(f"{what} of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class MalformedFrame(FrameError):
    """The body is not a single msgpack map."""

    default_code = "malformed_frame"


class MessageError(AgentRpcError):
    """The frame decodes but is not a valid message."""


class UnknownMessageType(MessageError):
    """``type`` names no message of this direction."""

    default_code = "unknown_message_type"


class InvalidMessage(MessageError):
    """A field is missing, has the wrong type or is out of range."""

    default_code = "invalid_message"


class InvalidArray(AgentRpcError):
    """An encoded array is malformed (unknown dtype, bad shape, wrong data length)."""

    default_code = "invalid_array"


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


class NonFiniteValue(ArraySpecMismatch):
    """NaN or ±Inf in a float array that must be finite (actions)."""

    default_code = "non_finite_value"


class AgentReportedError(AgentRpcError):
    """The agent side answered with an ``error`` message (not a codec failure).

    ``agent_code`` is one of :data:`ERROR_CODES` (or whatever a non-conforming agent sent).
    """

    default_code = "unexpected_message"

    def __init__(self, agent_code: str, message: str, slot: int | None = None) -> None:
        where = f" in slot {slot}" if slot is not None else ""
        super().__init__(f"agent reported {agent_code[:64]}{where}: {message}")
        self.agent_code = agent_code
        self.agent_message = message
        self.slot = slot


class ConnectionClosed(AgentRpcError):
    """The peer closed the stream (cleanly between frames, or in the middle of one)."""

    default_code = "malformed_frame"

    def __init__(self, message: str, *, mid_frame: bool) -> None:
        super().__init__(message)
        self.mid_frame = mid_frame
