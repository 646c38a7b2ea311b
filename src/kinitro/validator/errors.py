"""Errors of the validator role.

::

    ValidatorError (KinitroError)
    ├── AuthenticationError   the backend refused our hotkey (or never sent a challenge)
    │   └── IncompatibleError the backend refuses this release: protocol or evaluator
    │                         runtime (retrying cannot help: the node stops)
    └── SessionError          the backend broke the session protocol (reconnect)
"""

from __future__ import annotations

from kinitro.core.errors import KinitroError


class ValidatorError(KinitroError):
    """Root of the validator role's errors."""


class AuthenticationError(ValidatorError):
    """Authentication with the backend failed."""


class IncompatibleError(AuthenticationError):
    """The backend does not accept this validator's protocol or evaluator runtime."""


class SessionError(ValidatorError):
    """The WebSocket session broke its protocol; the client reconnects."""
