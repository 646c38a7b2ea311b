"""/ws/validator authentication: challenge–response against the chain metagraph."""

from __future__ import annotations

import websockets

from kinitro.core.runtime import local_runtime
from kinitro.protocol.validator_ws import AuthResponse, dump_message, parse_validator_message

from .conftest import Backend, Net, login, new_key, wait_for


async def _closed_code(client) -> int | None:  # type: ignore[no-untyped-def]
    try:
        await client.ws.recv()
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    return None


async def test_validator_with_permit_is_accepted(backend: Backend, net: Net) -> None:
    hotkey = await net.validator()
    client, reply = await login(backend, hotkey)
    try:
        assert reply.type == "auth_ok"
        assert reply.hotkey == hotkey.ss58_address
        assert reply.heartbeat_interval_s == backend.settings.heartbeat_interval_s
        async with backend.client(None) as http:
            vals = (await http.get("/api/v1/validators", params={"connected": True})).json()
        assert [v["hotkey"] for v in vals] == [hotkey.ss58_address]
    finally:
        await client.close()


async def test_forged_signature_is_refused(backend: Backend, net: Net) -> None:
    hotkey = await net.validator()
    client, reply = await login(backend, hotkey, sign_with=new_key())
    assert reply.type == "error" and reply.code == "auth_failed"
    assert await _closed_code(client) == 4401


async def test_unregistered_hotkey_is_refused(backend: Backend, net: Net) -> None:
    client, reply = await login(backend, new_key())
    assert reply.type == "error" and reply.code == "not_permitted"
    assert "not registered" in reply.message
    assert await _closed_code(client) == 4403


async def test_hotkey_without_permit_or_stake_is_refused(backend: Backend, net: Net) -> None:
    hotkey = await net.neuron(stake=10.0, permit=False)
    client, reply = await login(backend, hotkey)
    assert reply.type == "error" and reply.code == "not_permitted"
    assert "permit" in reply.message
    assert await _closed_code(client) == 4403


async def test_replayed_challenge_is_refused(backend: Backend, net: Net) -> None:
    hotkey = await net.validator()
    # a response captured on one connection ...
    ws1 = await websockets.connect(f"{backend.ws_url}/ws/validator")

    challenge = parse_validator_message(await ws1.recv())
    sig = bytes(hotkey.sign(f"kinitro-auth:{challenge.nonce}:{hotkey.ss58_address}".encode()))
    captured = AuthResponse(
        hotkey=hotkey.ss58_address,
        nonce=challenge.nonce,
        signature=sig.hex(),
        validator_version="test",
        runtime=local_runtime(),
    )
    await ws1.send(dump_message(captured))
    assert parse_validator_message(await ws1.recv()).type == "auth_ok"
    await ws1.close()
    # ... replayed on another connection (whose challenge differs) is refused
    ws2 = await websockets.connect(f"{backend.ws_url}/ws/validator")
    parse_validator_message(await ws2.recv())
    await ws2.send(dump_message(captured))
    reply = parse_validator_message(await ws2.recv())
    assert reply.type == "error" and reply.code == "auth_failed"
    await ws2.close()


async def test_garbage_before_auth_closes(backend: Backend, net: Net) -> None:
    ws = await websockets.connect(f"{backend.ws_url}/ws/validator")
    await ws.recv()
    await ws.send("not json at all")

    reply = parse_validator_message(await ws.recv())
    assert reply.type == "error" and reply.code == "auth_required"
    try:
        await ws.recv()
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd is not None and exc.rcvd.code == 4401


async def test_silent_validator_times_out(make_backend, net: Net) -> None:  # type: ignore[no-untyped-def]
    async with make_backend(heartbeat_timeout_s=1.0) as backend:
        hotkey = await net.validator()
        client, reply = await login(backend, hotkey)
        assert reply.type == "auth_ok"
        msg = await client.recv_type("error", within=5)  # no heartbeat: the session ends
        assert msg.code == "deadline_exceeded"
        assert await _closed_code(client) == 4408

        async def disconnected() -> bool:
            async with backend.client(None) as http:
                vals = (await http.get("/api/v1/validators")).json()
            return bool(vals[0]["hotkey"] == hotkey.ss58_address and not vals[0]["connected"])

        await wait_for(disconnected, within=5)
