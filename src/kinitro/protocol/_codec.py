"""JSON frame decoding shared by the WebSocket channels: pydantic errors → ProtocolError."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from kinitro.protocol.errors import (
    FieldIssue,
    FrameTooLargeError,
    InvalidMessageError,
    MalformedFrameError,
    UnknownMessageTypeError,
)

T = TypeVar("T")

_MAX_LISTED_ISSUES = 3
_NOT_AN_OBJECT = {"model_type", "model_attributes_type", "dict_type", "is_instance_of"}


def decode_json_frame(
    adapter: TypeAdapter[T],
    data: bytes | bytearray | memoryview | str,
    *,
    max_bytes: int,
    channel: str,
    discriminator: str = "type",
) -> T:
    """Decode one JSON text frame with ``adapter`` (strict), raising only ProtocolErrors."""
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedFrameError(f"{channel} frame contains lone surrogates") from None
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        kind = type(data).__name__
        raise MalformedFrameError(f"{channel} frame must be str or bytes, not {kind}")
    if len(raw) > max_bytes:
        raise FrameTooLargeError(len(raw), max_bytes, what=f"{channel} frame")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedFrameError(f"{channel} frame is not valid UTF-8 ({exc.reason})") from None
    try:
        return adapter.validate_json(raw, strict=True)
    except ValidationError as exc:
        raise _translate(exc, raw, channel, discriminator) from None
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:  # never escape
        raise MalformedFrameError(f"{channel} frame could not be decoded: {exc}") from None


def _peek(raw: bytes, discriminator: str) -> tuple[str | None, str | None]:
    """Best-effort ``(type, id)`` of an invalid frame, for error replies."""
    try:
        obj: Any = json.loads(raw)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(obj, dict):
        return None, None
    kind, ident = obj.get(discriminator), obj.get("id")
    return (kind if isinstance(kind, str) else None), (ident if isinstance(ident, str) else None)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _translate(exc: ValidationError, raw: bytes, channel: str, discriminator: str) -> Exception:
    errors = exc.errors(include_url=False, include_input=False, include_context=True)
    first = errors[0] if errors else None
    if first is not None and first["type"] == "json_invalid":
        detail = first.get("ctx", {}).get("error", first["msg"])
        return MalformedFrameError(f"{channel} frame is not valid JSON: {detail}")
    if first is not None and not first["loc"] and first["type"] in _NOT_AN_OBJECT:
        return MalformedFrameError(f"{channel} frame must be a JSON object")
    kind, ident = _peek(raw, discriminator)
    tag_errors = [e for e in errors if e["type"] in {"union_tag_invalid", "union_tag_not_found"}]
    if tag_errors:
        err = tag_errors[0]
        where = _strip_tag(_loc(err["loc"]), kind)
        ctx = err.get("ctx", {})
        tag_name = str(ctx.get("discriminator", repr(discriminator)))
        if err["type"] == "union_tag_not_found":
            text = f"{channel} message has no {tag_name} field"
        else:
            text = (
                f"unknown {channel} {tag_name} {ctx.get('tag')!r} "
                f"(expected one of {ctx.get('expected_tags', '')})"
            )
        if where:
            text = f"{text} at {where}"
        return UnknownMessageTypeError(text, message_type=kind, message_id=ident)
    issues = tuple(FieldIssue(_strip_tag(_loc(e["loc"]), kind), e["msg"]) for e in errors)
    listed = "; ".join(str(i) for i in issues[:_MAX_LISTED_ISSUES])
    more = len(issues) - _MAX_LISTED_ISSUES
    suffix = f" (+{more} more)" if more > 0 else ""
    label = f"{channel} {kind!r}" if kind else f"{channel} message"
    return InvalidMessageError(
        f"invalid {label}: {listed}{suffix}", issues=issues, message_type=kind, message_id=ident
    )


def _strip_tag(loc: str, kind: str | None) -> str:
    """Drop the union tag pydantic puts first in a location (``eval_job.job_id``)."""
    if kind and (loc == kind or loc.startswith(kind + ".")):
        return loc[len(kind) + 1 :]
    return loc


def dump_json(message: BaseModel, *, max_bytes: int, channel: str) -> str:
    """Serialise a wire model to its JSON text frame, refusing frames over ``max_bytes``."""
    text = message.model_dump_json()
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise FrameTooLargeError(size, max_bytes, what=f"{channel} {message.__class__.__name__}")
    return text
