"""Errors raised by the chain port and its adapters (see the package docstring for the tree)."""

from __future__ import annotations

from kinitro.core.errors import KinitroError


class ChainError(KinitroError):
    """Base class of every chain failure. ``code`` is a stable machine-readable name."""

    code: str = "chain_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ChainUnavailableError(ChainError):
    """The chain endpoint cannot be reached or answered garbage."""

    code = "unavailable"


class NotRegisteredError(ChainError):
    """The hotkey has no uid on the subnet."""

    code = "not_registered"


class AlreadyRegisteredError(ChainError):
    """The hotkey already holds a uid on the subnet."""

    code = "already_registered"


class PermissionDeniedError(ChainError):
    """The signer may not perform this call (wrong coldkey, no validator permit…)."""

    code = "permission_denied"


class InvalidSignatureError(ChainError):
    """A signature does not verify against the claimed key (or is malformed)."""

    code = "invalid_signature"


class CommitmentTooLargeError(ChainError):
    """The commitment exceeds the chain's 128-byte limit."""

    code = "commitment_too_large"


class RateLimitedError(ChainError):
    """A commitment or weights call came before the rate limit allows it."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_in_blocks: int = 0) -> None:
        super().__init__(message)
        self.retry_in_blocks = retry_in_blocks


class InvalidWeightsError(ChainError):
    """Weights are empty, negative, non-finite or name unknown uids."""

    code = "invalid_weights"


class BadNonceError(ChainError):
    """The signed call's nonce is not the account's next nonce (replay or race)."""

    code = "bad_nonce"


class WalletError(ChainError):
    """A wallet or key file is missing, unreadable or already exists."""

    code = "wallet_error"


class InvalidRequestError(ChainError):
    """The call itself is malformed (unknown op, bad arguments, bad address)."""

    code = "invalid_request"


ERRORS_BY_CODE: dict[str, type[ChainError]] = {
    cls.code: cls
    for cls in (
        ChainError,
        ChainUnavailableError,
        NotRegisteredError,
        AlreadyRegisteredError,
        PermissionDeniedError,
        InvalidSignatureError,
        CommitmentTooLargeError,
        RateLimitedError,
        InvalidWeightsError,
        BadNonceError,
        WalletError,
        InvalidRequestError,
    )
}


def error_from_code(code: str, message: str) -> ChainError:
    """Rebuild the typed error a LocalChain service reported as ``{code, message}``."""
    cls = ERRORS_BY_CODE.get(code, ChainError)
    if cls is RateLimitedError:
        return RateLimitedError(message)
    err = cls(message)
    if cls is ChainError:
        err.code = code
    return err
