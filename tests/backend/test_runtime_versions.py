"""Protocol and evaluator runtime versions over the real /ws/validator socket.

A validator of another protocol or with a simulator stack the backend does not accept is
refused with ``unsupported_version`` and close code 4426 whose reason says why; results
carry their runtime, results of a runtime the backend does not accept are refused, and a
score never combines results of two runtimes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import websockets

from kinitro.chain.wallets import create_wallet, load_hotkey
from kinitro.core.runtime import local_runtime
from kinitro.protocol.common import PROTOCOL_VERSION
from kinitro.protocol.runtime import RuntimeVersions
from kinitro.protocol.validator_ws import Ack, AuthResponse, dump_message, parse_validator_message

from .conftest import Backend, Net, create_competition, login, wait_for
from .playing import play
from .test_flow import commit_artifact, get, result


def _runtime(**simulator: str) -> RuntimeVersions:
    here = local_runtime()
    return RuntimeVersions(simulator={**here.simulator, **simulator}, benchmarks=here.benchmarks)


async def _close(client: Any) -> tuple[int, str]:
    try:
        while True:
            await client.ws.recv()
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code, exc.rcvd.reason


async def _connected(backend: Backend) -> list[str]:
    vals = await get(backend, "/api/v1/validators")
    return [v["hotkey"] for v in vals if v["connected"]]


async def _raw_login(backend: Backend, hotkey: Any, **fields: Any) -> Any:
    """Answer the challenge with a hand-built auth_response (an older or newer peer)."""
    ws = await websockets.connect(f"{backend.ws_url}/ws/validator")
    challenge = json.loads(await ws.recv())
    assert challenge["protocol_version"] == PROTOCOL_VERSION
    sig = bytes(hotkey.sign(f"kinitro-auth:{challenge['nonce']}:{hotkey.ss58_address}".encode()))
    frame = {
        "type": "auth_response",
        "id": "c" * 32,
        "hotkey": hotkey.ss58_address,
        "nonce": challenge["nonce"],
        "signature": sig.hex(),
        "validator_version": "0.0.9",
        **fields,
    }
    await ws.send(json.dumps(frame))
    return ws


async def test_validator_of_another_protocol_is_told_so(backend: Backend, net: Net) -> None:
    hotkey = await net.validator()
    for fields in (
        {"protocol_version": 1},  # an older release: no runtime field at all
        {"protocol_version": PROTOCOL_VERSION + 1, "capabilities": ["x"]},  # a newer one
    ):
        ws = await _raw_login(backend, hotkey, **fields)
        error = json.loads(await ws.recv())
        assert error["type"] == "error" and error["code"] == "unsupported_version", error
        assert f"protocol {fields['protocol_version']}" in error["message"]
        with_close = type("C", (), {"ws": ws})()
        code, reason = await _close(with_close)
        assert code == 4426 and reason.startswith("unsupported_version: validator speaks")
    assert await _connected(backend) == []


async def test_simulator_version_not_accepted_is_refused(backend: Backend, net: Net) -> None:
    hotkey = await net.validator()
    mujoco = local_runtime().simulator["mujoco"]
    client, reply = await login(backend, hotkey, runtime=_runtime(mujoco="2.0.0"))
    assert reply.type == "error" and reply.code == "unsupported_version"
    assert f"mujoco 2.0.0 is not accepted (this backend accepts {mujoco})" in reply.message
    code, reason = await _close(client)
    assert code == 4426 and "mujoco 2.0.0" in reason
    # a runtime missing a package, and a full validator stating none, are refused too
    gone = RuntimeVersions(
        simulator={k: v for k, v in local_runtime().simulator.items() if k != "metaworld"},
        benchmarks=local_runtime().benchmarks,
    )
    client, reply = await login(backend, hotkey, runtime=gone)
    assert reply.code == "unsupported_version" and "metaworld not reported" in reply.message
    ws = await _raw_login(backend, hotkey, protocol_version=PROTOCOL_VERSION)
    error = json.loads(await ws.recv())
    assert error["code"] == "unsupported_version" and "no evaluator runtime" in error["message"]
    await ws.close()
    assert await _connected(backend) == []


async def test_benchmark_series_in_use_must_be_run(backend: Backend, net: Net) -> None:
    await create_competition(backend)  # metaworld/MT1-reach-v3
    hotkey = await net.validator()
    newer = RuntimeVersions(simulator=local_runtime().simulator, benchmarks={"metaworld": 4})
    refused, reply = await login(backend, hotkey, runtime=newer)
    assert reply.code == "unsupported_version"
    assert (await _close(refused))[0] == 4426
    assert "metaworld benchmarks -v3" in reply.message and "runs -v4" in reply.message
    # a lite validator runs no evaluator: its simulator stack does not matter
    lite, ok = await login(backend, hotkey, lite=True, runtime=_runtime(mujoco="2.0.0"))
    assert ok.type == "auth_ok"
    await lite.close()


async def test_versions_are_recorded_and_runtimes_never_mixed_in_a_score(
    make_backend: Any, net: Net, registry: Any
) -> None:
    here = local_runtime()
    other = _runtime(mujoco="9.9.9")
    accepted = {"mujoco": [here.simulator["mujoco"], "9.9.9"]}
    async with make_backend(accepted_simulators=accepted) as backend:
        await create_competition(backend, replication=2, min_validators=1)
        a, b = await net.validator(), await net.validator()
        client_a, ok_a = await login(backend, a)
        client_b, ok_b = await login(backend, b, runtime=other)
        assert ok_a.type == ok_b.type == "auth_ok"
        vals = {v["hotkey"]: v for v in await get(backend, "/api/v1/validators")}
        assert vals[b.ss58_address]["runtime"]["simulator"]["mujoco"] == "9.9.9"
        await commit_artifact(net, registry)
        job_a = await client_a.recv_type("eval_job", within=15)
        job_b = await client_b.recv_type("eval_job", within=15)
        assert job_a.job_id == job_b.job_id
        for client, job in ((client_a, job_a), (client_b, job_b)):
            await client.send(Ack.of(job))
        # A (this backend's preferred runtime) saw 2/2 successes, B (the other) 0/2: a
        # median across both would say 0.5
        assert (await play(client_a, job_a, 2, runtime=here)).ok
        assert (await play(client_b, job_b, 0, runtime=other)).ok

        async def scored_after_both() -> Any:
            subs = await get(backend, "/api/v1/submissions")
            sub = await get(backend, f"/api/v1/submissions/{subs['items'][0]['id']}")
            received = max((r["received_at"] for r in sub["results"]), default=None)
            done = len(sub["results"]) == 2 and sub["score"]
            return sub if done and sub["score"]["computed_at"] > received else None

        sub = await wait_for(scored_after_both, within=30)
        assert sorted(r["runtime_key"] for r in sub["results"]) == sorted([here.key, other.key])
        assert sub["score"]["success_rate"] == 1.0
        assert sub["score"]["detail"]["runtime"] == here.key
        await client_a.close()
        await client_b.close()


async def test_result_of_a_runtime_not_accepted_is_refused(backend: Backend, net: Net) -> None:
    client, ok = await login(backend, await net.validator())
    assert ok.type == "auth_ok"
    # the evaluator behind an accepted handshake ran something else: never stored
    message = result("any-job").model_copy(update={"runtime": _runtime(mujoco="2.0.0")})
    await client.send(message)
    nack = await client.recv_type("ack")
    assert nack.ack_id == message.id and not nack.ok
    assert nack.error_code == "unsupported_version" and "mujoco 2.0.0" in nack.detail
    assert (await get(backend, "/api/v1/results"))["total"] == 0
    await client.close()


def test_auth_response_round_trips_its_runtime() -> None:
    message = AuthResponse(
        hotkey="5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
        nonce="ab" * 16,
        signature="00" * 64,
        validator_version="0.1.0",
        runtime=local_runtime(),
    )
    assert parse_validator_message(dump_message(message)) == message


async def test_validator_cli_prints_the_refusal_and_exits_78(
    make_backend: Any, net: Net, validator_db_url: str, tmp_path: Any
) -> None:
    """The real `kinitro validator run` against a backend that accepts another mujoco."""

    create_wallet("val", "default", tmp_path)
    hotkey = load_hotkey("val", "default", tmp_path).ss58_address
    await net.chain.register(net.coldkey, hotkey)
    await net.chain.set_stake(net.coldkey, hotkey, 1000.0)
    async with make_backend(accepted_simulators={"mujoco": ["0.0.1"]}) as backend:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kinitro", "validator", "run",
            "--backend-url", f"{backend.ws_url}/ws/validator",
            "--database-url", validator_db_url, "--wallet", "val",
            "--wallet-path", str(tmp_path), "--chain-url", net.chain.url,
            "--netuid", str(net.chain.netuid), "--no-weights",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = err.decode()
    assert proc.returncode == 78, text
    mujoco = local_runtime().simulator["mujoco"]
    assert "error: the backend refuses this validator: unsupported_version:" in text
    assert f"mujoco {mujoco} is not accepted (this backend accepts 0.0.1)" in text
    assert f"evaluator runtime {local_runtime().key}" in text and "Traceback" not in text
    status = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "kinitro", "validator", "status", "--json",
         "--database-url", validator_db_url],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    connection = json.loads(status.stdout)["connection"]
    assert connection["state"] == "stopped" and "incompatible" in connection["last_error"]
