"""What one client may cost the backend: request rates, concurrent connections.

Every public surface is reachable by anyone, so each is bounded per client address and in
total, and a refusal is cheap (answered before any database work) and explicit:

* REST under ``/api/`` — a token bucket per address (``rest_rate_per_s``, ``rest_burst``);
  over it: ``429 rate_limited`` with ``Retry-After``. A realtime connection attempt takes
  a token from the same bucket (each one costs a snapshot).
* ``/ws/realtime`` — at most ``realtime_max_clients`` sockets per replica and
  ``realtime_max_per_address`` per address (:class:`ConnectionCaps`).
* request bodies — at most ``max_body_bytes`` on admin and render-worker routes, none
  elsewhere (public routes only read); a declared ``Content-Length`` over the limit is
  answered ``413 payload_too_large`` before routing (so before authentication), a
  streamed body is cut off as soon as it passes the limit: nothing past it is buffered
  (:class:`BodyLimitMiddleware`).

Validator sign-ins are bounded by ``max_pending_auth`` (:mod:`.validator_ws`), metagraph
fetches by :mod:`.metagraph`.

An address is the peer of the TCP connection, or the ``X-Forwarded-For`` client when the
peer is a trusted proxy (uvicorn's ``--forwarded-allow-ips``, default 127.0.0.1). IPv6
clients are grouped by their /64, which one host usually owns whole.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from kinitro.backend.metrics import Metrics

MAX_TRACKED_ADDRESSES = 100_000
"""Buckets kept at most; idle (refilled) ones are forgotten first."""


def client_address(scope: Scope) -> str:
    """The rate-limiting key of a connection: its IPv4 address or IPv6 /64."""
    client = scope.get("client")
    host = str(client[0]) if client else "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


@dataclass
class TokenBuckets:
    """One token bucket per address: ``rate`` tokens/s, at most ``burst`` saved up."""

    rate: float
    burst: float
    max_addresses: int = MAX_TRACKED_ADDRESSES
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, address: str) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until one is available."""
        now = time.monotonic()
        tokens, at = self._buckets.get(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[address] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[address] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_addresses:
            self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        """Drop buckets that are full again (forgetting them changes nothing), then, if
        an attacker holds that many addresses busy, the least recently used half."""
        full = [
            key
            for key, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) > self.max_addresses * 3 // 4:
            by_age = sorted(self._buckets.items(), key=lambda item: item[1][1])
            for key, _ in by_age[: len(by_age) // 2]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimitMiddleware:
    """ASGI middleware: ``429 rate_limited`` for REST requests over an address's budget."""

    def __init__(
        self, app: ASGIApp, buckets: TokenBuckets, metrics: Metrics, prefix: str = "/api/"
    ) -> None:
        self.app = app
        self.buckets = buckets
        self.metrics = metrics
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            wait = self.buckets.take(client_address(scope))
            if wait > 0:
                self.metrics.rate_limited.inc()
                response = JSONResponse(
                    {
                        "detail": f"too many requests from your address; retry in {wait:.1f}s",
                        "code": "rate_limited",
                    },
                    status_code=429,
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its route's limit (FastAPI
    re-raises it from its body reading; the app's handler answers 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than this route accepts ({limit} bytes)")


class BodyLimitMiddleware:
    """ASGI middleware: per-route request body limits, enforced while reading.

    ``limits`` maps path prefixes to their limit (first match wins); other paths accept
    ``default`` bytes.
    """

    def __init__(self, app: ASGIApp, limits: list[tuple[str, int]], default: int = 0) -> None:
        self.app = app
        self.limits = limits
        self.default = default

    def limit_for(self, path: str) -> int:
        return next((n for prefix, n in self.limits if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {
            "detail": f"request body larger than this route accepts ({limit} bytes)",
            "code": "payload_too_large",
        },
        status_code=413,
        headers={"Connection": "close"},
    )


@dataclass(frozen=True)
class Refusal:
    """Why a connection is not admitted: a WebSocket close code and reason."""

    code: int
    reason: str


@dataclass
class ConnectionCaps:
    """Concurrent connections of one kind, in total and per address."""

    total: int
    per_address: int
    total_code: int
    per_address_code: int
    what: str = "connections"
    by_address: Counter[str] = field(default_factory=Counter)
    count: int = 0

    def admit(self, address: str) -> Refusal | None:
        """Count a new connection from ``address``, or say why it is refused."""
        if self.count >= self.total:
            return Refusal(self.total_code, f"too many {self.what} ({self.total}); retry later")
        if self.by_address[address] >= self.per_address:
            return Refusal(
                self.per_address_code,
                f"too many {self.what} from your address ({self.per_address})",
            )
        self.count += 1
        self.by_address[address] += 1
        return None

    def release(self, address: str) -> None:
        self.count -= 1
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]
