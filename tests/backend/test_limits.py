"""Abuse limits, each played as the attack over the real wire (uvicorn on loopback).

* request bodies: refused with 413 while being read, before authentication, on every
  route that can take one (a 200 MB upload is never buffered);
* public REST: a token bucket per client address (429 + Retry-After), others unaffected;
* realtime sockets: capped per address (4429) and per replica (1013), slots come back;
* validator sign-ins: at most ``max_pending_auth`` at once (error + 1013), connection
  attempts count against the address's budget;
* metagraph: sign-ins with unknown hotkeys share one fetch per interval, and a validator
  that registered a moment ago still gets in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from kinitro.protocol.realtime import Subscribe, dump_message, parse_server_message
from kinitro.protocol.validator_ws import parse_validator_message

from .conftest import ADMIN_KEY, Backend, Net, login, new_key, round_wallet

HUGE = 200 * 1024 * 1024


async def _raw_request(
    backend: Backend, head: str, body_chunks: int = 0, chunk: bytes = b"x" * 65536
) -> tuple[int, bytes, int]:
    """Send ``head`` then up to ``body_chunks`` chunks while reading; returns (status,
    body, bytes of body sent before the answer came)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", backend.settings.port)
    writer.write(head.encode())
    await writer.drain()
    answer = asyncio.ensure_future(_read_response(reader))
    sent = 0
    for _ in range(body_chunks):
        if answer.done():
            break
        writer.write(chunk)
        sent += len(chunk)
        try:
            await asyncio.wait_for(writer.drain(), 5)
        except (ConnectionError, TimeoutError):
            break
        await asyncio.sleep(0)
    status, body = await asyncio.wait_for(answer, 15)
    writer.close()
    return status, body, sent


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, await reader.readexactly(length)


def _routes(backend: Backend) -> list[tuple[str, str]]:
    """Every (method, path) of the API (its OpenAPI schema), ids filled in."""
    routes = []
    for path, methods in backend.app.openapi()["paths"].items():
        for name in ("{competition_id}", "{job_id}", "{key_id}", "{decision_id}"):
            path = path.replace(name, "1")
        for name in ("{submission_id}", "{episode_id}"):
            path = path.replace(name, "1")
        routes.extend((method.upper(), path) for method in methods)
    assert len(routes) >= 25
    return routes


async def test_huge_bodies_are_refused_before_auth_on_every_route(backend: Backend) -> None:
    for method, path in _routes(backend):
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {HUGE}\r\n\r\n"
        )
        # answered at once (the attacker never sends the body), before authentication
        status, body, _ = await _raw_request(backend, head)
        assert status == 413, (method, path, status, body)
        assert json.loads(body)["code"] == "payload_too_large"
    # the same with a valid admin key: still 413, the key changes nothing
    head = (
        "POST /api/v1/admin/competitions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {HUGE}\r\n\r\n"
    )
    assert (await _raw_request(backend, head))[0] == 413


async def test_streamed_body_is_cut_off_at_the_limit(backend: Backend) -> None:
    head = (
        "POST /api/v1/admin/competitions HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 16384
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    status, body, sent = await _raw_request(backend, head, body_chunks=3200, chunk=chunk)
    assert status == 413 and json.loads(body)["code"] == "payload_too_large"
    # refused after the limit, long before the 50 MB the attacker had ready
    assert sent < 8 * 1024 * 1024, sent
    # a body under the limit still works
    async with backend.client() as http:
        resp = await http.post("/api/v1/admin/competitions", content=b"{}")
    assert resp.status_code == 422


async def test_rest_rate_limit_is_per_address(make_backend: Any) -> None:
    async with make_backend(rest_rate_per_s=1.0, rest_burst=10) as backend:
        async with backend.client(None) as http:
            answers = await asyncio.gather(*(http.get("/api/v1/stats") for _ in range(30)))
            codes = sorted(a.status_code for a in answers)
            assert codes.count(200) >= 10 and codes.count(429) >= 10, codes
            refused = next(a for a in answers if a.status_code == 429)
            assert refused.json()["code"] == "rate_limited"
            assert int(refused.headers["Retry-After"]) >= 1
            # other addresses (behind the trusted local proxy) have their own budget
            other = await http.get(
                "/api/v1/competitions", headers={"X-Forwarded-For": "203.0.113.7"}
            )
            assert other.status_code == 200
            # health checks and metrics are not REST: never limited
            assert (await http.get("/health")).status_code == 200
            await asyncio.sleep(1.5)  # the bucket refills at 1/s
            assert (await http.get("/api/v1/stats")).status_code == 200
        assert backend.state.metrics.rate_limited._value.get() >= 1


async def _realtime(backend: Backend, source: str) -> Any:
    ws = await websockets.connect(
        f"{backend.ws_url}/ws/realtime", local_addr=(source, 0), open_timeout=10
    )
    with contextlib.suppress(websockets.ConnectionClosed):  # refused ones are closed at once
        await ws.send(dump_message(Subscribe(event_types=["stats"])))
    return ws


async def _close_code(ws: Any) -> tuple[int | None, str]:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed as exc:
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")


async def test_realtime_sockets_are_capped_per_address_and_per_replica(
    make_backend: Any,
) -> None:
    async with make_backend(realtime_max_clients=5, realtime_max_per_address=2) as backend:
        first = [await _realtime(backend, "127.0.0.2") for _ in range(2)]
        for ws in first:
            assert parse_server_message(await asyncio.wait_for(ws.recv(), 10)).type == "snapshot"
        code, reason = await _close_code(await _realtime(backend, "127.0.0.2"))
        assert code == 4429 and "your address" in reason
        others = [await _realtime(backend, f"127.0.0.{i}") for i in (3, 4, 5)]
        for ws in others:
            assert parse_server_message(await asyncio.wait_for(ws.recv(), 10)).type == "snapshot"
        code, reason = await _close_code(await _realtime(backend, "127.0.0.6"))
        assert code == 1013 and "retry later" in reason
        async with backend.client(None) as http:
            assert (await http.get("/health")).json()["realtime_clients"] == 5
        # a closed socket frees its slots
        await first[0].close()
        await asyncio.sleep(0.3)
        again = await _realtime(backend, "127.0.0.2")
        assert parse_server_message(await asyncio.wait_for(again.recv(), 10)).type == "snapshot"
        assert backend.state.metrics.realtime_refused.labels("4429")._value.get() == 1
        for ws in [first[1], *others, again]:
            await ws.close()


async def test_pending_validator_sign_ins_are_capped(make_backend: Any, net: Net) -> None:
    async with make_backend(max_pending_auth=2) as backend:
        stalled = []
        for _ in range(2):  # take the challenge, never answer it
            ws = await websockets.connect(f"{backend.ws_url}/ws/validator")
            assert parse_validator_message(await ws.recv()).type == "auth_challenge"
            stalled.append(ws)
        ws = await websockets.connect(f"{backend.ws_url}/ws/validator")
        reply = parse_validator_message(await asyncio.wait_for(ws.recv(), 10))
        assert reply.type == "error" and reply.code == "rate_limited"
        assert (await _close_code(ws))[0] == 1013
        for ws in stalled:
            await ws.close()
        await asyncio.sleep(0.3)
        client, ok = await login(backend, await net.validator())
        assert ok.type == "auth_ok"
        await client.close()


async def test_validator_connection_attempts_count_against_the_address(
    make_backend: Any,
) -> None:
    async with make_backend(rest_rate_per_s=1.0, rest_burst=3) as backend:
        replies = []
        for _ in range(5):
            ws = await websockets.connect(f"{backend.ws_url}/ws/validator")
            replies.append(parse_validator_message(await asyncio.wait_for(ws.recv(), 10)))
            await ws.close()
        assert [r.type for r in replies[:3]] == ["auth_challenge"] * 3
        assert replies[-1].type == "error" and replies[-1].code == "rate_limited"


async def test_unknown_hotkeys_cannot_multiply_metagraph_fetches(
    make_backend: Any, net: Net
) -> None:
    interval = 1.0
    async with make_backend(metagraph_min_refresh_s=interval, max_pending_auth=64) as backend:
        cache = backend.state.metagraphs
        await backend.state.metagraph()
        before, started = cache.fetches, time.monotonic()
        results = await asyncio.gather(*(login(backend, new_key()) for _ in range(40)))
        elapsed = time.monotonic() - started
        assert all(reply.type == "error" and reply.code == "not_permitted" for _, reply in results)
        fetches = cache.fetches - before
        assert 1 <= fetches <= 1 + elapsed / interval, (fetches, elapsed)
        for client, _ in results:
            await client.close()
        # a validator registered a moment ago gets in: it waits for the next fetch
        client, ok = await login(backend, await net.validator())
        assert ok.type == "auth_ok"
        await client.close()


@pytest.mark.parametrize("public", [None, True])
async def test_metrics_need_a_token_in_production(
    make_backend: Any, public: bool | None, net: Net, tmp_path: Path
) -> None:
    token = "scrape-token-0123456789abcdef"
    async with (
        make_backend(
            environment="production",
            seed_secret="s" * 40,
            metrics_token=token,
            metrics_public=public,
            **await round_wallet(net, tmp_path / "wallets"),
        ) as backend,
        httpx.AsyncClient(base_url=backend.url, timeout=10) as http,
    ):
        anonymous = await http.get("/metrics")
        if public:  # explicitly allowed by the operator
            assert anonymous.status_code == 200
            return
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "unauthorized"
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope-nope"})
        assert wrong.status_code == 401
        for key in (token, ADMIN_KEY):
            ok = await http.get("/metrics", headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200 and "kinitro_backend_" in ok.text
