"""Sign and verify messages with sr25519 hotkeys (bittensor-wallet keypairs).

Signatures travel as ``0x``-prefixed or bare hex. ``verify_signature`` never raises for a
bad signature — it returns False; ``require_signature`` raises
:class:`~kinitro.chain.errors.InvalidSignatureError` naming the key.
"""

from __future__ import annotations

from typing import Protocol

from bittensor_wallet import Keypair

from kinitro.chain.errors import InvalidRequestError, InvalidSignatureError


class SigningKey(Protocol):
    """What we need from a keypair: its address and ``sign`` (bittensor_wallet.Keypair)."""

    @property
    def ss58_address(self) -> str: ...

    def sign(self, data: bytes | str) -> bytes: ...


def sign_message(key: SigningKey, message: bytes | str) -> str:
    """Hex signature (``0x…``) of ``message`` by ``key``."""
    data = message.encode() if isinstance(message, str) else message
    return "0x" + bytes(key.sign(data)).hex()


def is_valid_ss58(address: str) -> bool:
    try:
        Keypair(ss58_address=address)
    except (ValueError, TypeError):
        return False
    return True


def require_ss58(address: str, what: str = "address") -> str:
    if not isinstance(address, str) or not is_valid_ss58(address):
        raise InvalidRequestError(f"{what} {address!r} is not a valid ss58 address")
    return address


def _signature_bytes(signature: str | bytes) -> bytes | None:
    if isinstance(signature, bytes):
        return signature
    text = signature.strip().removeprefix("0x")
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def verify_signature(hotkey: str, message: bytes | str, signature: str | bytes) -> bool:
    """True when ``signature`` is ``hotkey``'s sr25519 signature over ``message``."""

    raw = _signature_bytes(signature)
    if raw is None or len(raw) != 64:
        return False
    data = message.encode() if isinstance(message, str) else message
    try:
        return bool(Keypair(ss58_address=hotkey).verify(data, raw))
    except (ValueError, TypeError):
        return False


def require_signature(hotkey: str, message: bytes | str, signature: str | bytes) -> None:
    """Raise :class:`InvalidSignatureError` unless the signature verifies."""
    if not verify_signature(hotkey, message, signature):
        raise InvalidSignatureError(f"signature does not verify for hotkey {hotkey}")
