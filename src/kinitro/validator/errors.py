"""Errors of the validator role.

::

    ValidatorError (KinitroError)
    ├── AuthenticationError   the backend refused our hotkey (or never sent a challenge)
    └── SessionError          the backend broke the session protocol (reconnect)
"""

from __future__ import annotations

from kinitro.core.errors import KinitroError


class ValidatorError(KinitroError):
    """Root of the validator role's errors."""


class AuthenticationError(ValidatorError):
    """Authentication with the backend failed."""


class SessionError(ValidatorError):
    """The WebSocket session broke its protocol; the client reconnects."""
