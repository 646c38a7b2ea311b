"""Read-only calls to the backend's public API for the miner commands (``commit`` checks
the competition id, ``status`` explains the standing). One timeout, one error type."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from kinitro.miner.settings import MinerSettings


class BackendUnavailable(Exception):
    """No usable answer from the backend (unreachable, an error status, not JSON)."""


def get_json(settings: MinerSettings, path: str, **params: Any) -> Any:
    """``GET backend_url + path`` as JSON; :class:`BackendUnavailable` says why not."""
    url = settings.backend_url.rstrip("/") + path
    try:
        response = httpx.get(url, params=params or None, timeout=settings.timeout_s)
    except httpx.HTTPError as exc:
        raise BackendUnavailable(
            f"backend at {settings.backend_url} unreachable ({type(exc).__name__})"
        ) from None
    if response.status_code != 200:
        raise BackendUnavailable(f"backend answered {response.status_code} for {path}")
    try:
        return response.json()
    except ValueError:
        raise BackendUnavailable(f"backend answered non-JSON for {path}") from None
