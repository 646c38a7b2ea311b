"""API keys: ``kin_<prefix>_<secret>``; only the sha256 of the whole key is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "kin"
ROLES = frozenset({"admin", "read", "render"})


def generate() -> tuple[str, str, str]:
    """A new key: (full key shown once, lookup prefix, sha256 hex to store)."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, digest(key)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def prefix_of(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1]:
        return None
    return parts[1]


def matches(key: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(key), stored_digest)
