"""Backend errors (tree in the package docstring); mapped to HTTP only in :mod:`.app`."""

from __future__ import annotations

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
