"""Backend errors (tree in the package docstring); mapped to HTTP only in :mod:`.app`.

:func:`reply_ref` is shared by both sockets (validator, realtime) for their error replies.
"""

from __future__ import annotations

import re
from datetime import datetime

from kinitro.core.errors import KinitroError


class BackendError(KinitroError):
    status_code = 500
    code = "internal_error"


class NotFoundError(BackendError):
    status_code = 404
    code = "not_found"


class ConflictError(BackendError):
    status_code = 409
    code = "conflict"


class BadRequestError(BackendError):
    status_code = 400
    code = "bad_request"


class AuthError(BackendError):
    status_code = 401
    code = "unauthorized"


class ForbiddenError(BackendError):
    status_code = 403
    code = "forbidden"


class SealedError(ForbiddenError):
    """What was asked derives from a round's secret, which is revealed after the round."""

    code = "sealed"

    def __init__(self, what: str, sealed_until: datetime) -> None:
        super().__init__(
            f"{what} is sealed until the round ends and its secret is revealed "
            f"({sealed_until.isoformat()})"
        )
        self.sealed_until = sealed_until


class QueueFullError(BackendError):
    status_code = 429
    code = "queue_full"


class UnavailableError(BackendError):
    """A store this backend depends on (the media store) cannot be read now."""

    status_code = 503
    code = "unavailable"


_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")


def reply_ref(message_id: str | None) -> str | None:
    """``message_id`` when an error reply may name it as its ``ref_id`` (a well-formed
    message id, as read from a frame that was refused), else None."""
    if message_id and _MESSAGE_ID.fullmatch(message_id):
        return message_id
    return None
