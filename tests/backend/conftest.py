"""Backend test fixtures: a real LocalChain service, a local artifact registry, and the
real backend app served by uvicorn on a free loopback port (in-process, so each test
passes its own settings), plus WebSocket helpers speaking the wire protocol."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from bittensor_wallet import Keypair

from kinitro.backend.app import create_app
from kinitro.backend.settings import Settings
from kinitro.chain.local.client import LocalChain
from kinitro.chain.local.process import LocalChainProcess
from kinitro.chain.wallets import create_wallet
from kinitro.core.runtime import local_runtime
from kinitro.protocol.common import ArtifactRef
from kinitro.protocol.runtime import RuntimeVersions
from kinitro.protocol.validator_ws import (
    AuthResponse,
    dump_message,
    parse_validator_message,
)
from kinitro.storage.artifacts import LocalRegistry

_NETUIDS = itertools.count(100 + (os.getpid() % 50) * 100)
ADMIN_KEY = "test-admin-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_key() -> Keypair:
    return Keypair.create_from_mnemonic(Keypair.generate_mnemonic())


@pytest.fixture(scope="session")
def chain_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalChainProcess]:
    data_dir = tmp_path_factory.mktemp("backend-chain") / "chain"
    with LocalChainProcess(
        data_dir,
        block_interval=0.1,
        tempo=20,  # 2-4 s epochs: commitment space is never the bottleneck
        weights_rate_limit=1,
        min_validator_stake=100.0,
    ) as proc:
        yield proc


@dataclass
class Net:
    """One subnet of the shared LocalChain with a coldkey that owns its hotkeys."""

    chain: LocalChain
    coldkey: Keypair = field(default_factory=new_key)

    async def neuron(self, *, stake: float = 0.0, permit: bool | None = None) -> Keypair:
        hotkey = new_key()
        await self.chain.register(self.coldkey, hotkey.ss58_address)
        if stake:
            await self.chain.set_stake(self.coldkey, hotkey.ss58_address, stake)
        if permit is not None:
            await self.chain.set_permit(self.coldkey, hotkey.ss58_address, permit)
        return hotkey

    async def validator(self) -> Keypair:
        return await self.neuron(stake=1000.0, permit=True)


async def round_wallet(net: Net, wallets: Path) -> dict[str, Any]:
    """Backend settings naming a registered hotkey to commit rounds with (sealed rounds)."""

    info = create_wallet("round", "default", wallets)
    await net.chain.register(net.coldkey, info.hotkey)
    return {"round_wallet_name": "round", "round_wallet_path": wallets}


@pytest.fixture
async def net(chain_proc: LocalChainProcess) -> AsyncIterator[Net]:
    chain = LocalChain(chain_proc.url, next(_NETUIDS), timeout=10)
    try:
        yield Net(chain)
    finally:
        await chain.close()


@pytest.fixture
def registry(tmp_path: Path) -> LocalRegistry:
    return LocalRegistry(tmp_path / "registry")


def upload(registry: LocalRegistry, repo: str, content: bytes) -> ArtifactRef:
    path = registry.root.parent / f"upload-{os.urandom(4).hex()}.tar.gz"
    path.write_bytes(content)
    return registry.upload(path, repo)


@dataclass
class Backend:
    url: str
    ws_url: str
    settings: Settings
    app: Any

    def client(self, key: str | None = ADMIN_KEY) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    @property
    def state(self) -> Any:
        return self.app.state.backend


def test_settings(db_url: str, net: Net, local: LocalRegistry, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        database_url=db_url,
        migrate_on_start=False,
        chain_url=net.chain.url,
        netuid=net.chain.netuid,
        registry_dir=local.root,
        min_validator_stake=100.0,
        replication=1,
        min_validators=1,
        scheduler_interval_s=0.2,
        chain_scan_interval_s=0.2,
        scoring_interval_s=0.3,
        stats_interval_s=0.5,
        heartbeat_interval_s=1.0,
        heartbeat_timeout_s=60.0,  # tests wait without heartbeats on a loaded machine
        auth_timeout_s=5.0,
        lease_s=60.0,
        round_duration_s=3600,
        metagraph_ttl_s=0.5,
        metagraph_min_refresh_s=0.05,
        admin_api_key=ADMIN_KEY,
        db_pool_size=5,
        # test validators report made-up episodes without action logs: replay audits of
        # them (after a reveal) only run where a test asks (test_audits, test_agent_rerun)
        audit_workers=0,
    )
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Backend]:
    """Run the real app under uvicorn on a free loopback port in this event loop."""

    port = free_port()
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port})
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
            ws_max_size=settings.max_frame_bytes + 1024,
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("backend did not start")
        yield Backend(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", settings, app)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=15)


@pytest.fixture
def make_backend(
    backend_db_url: str, net: Net, registry: LocalRegistry
) -> Callable[..., contextlib.AbstractAsyncContextManager[Backend]]:
    def make(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Backend]:
        return serve(test_settings(backend_db_url, net, registry, **overrides))

    return make


@pytest.fixture
async def backend(make_backend: Callable[..., Any]) -> AsyncIterator[Backend]:
    async with make_backend() as b:
        yield b


# ------------------------------------------------------------------ validator client


class ValidatorClient:
    def __init__(self, ws: Any, hotkey: Keypair) -> None:
        self.ws = ws
        self.hotkey = hotkey
        self.weights: list[Any] = []

    async def send(self, message: Any) -> None:
        await self.ws.send(dump_message(message))

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send(text)

    async def recv(self, within: float = 10.0) -> Any:
        raw = await asyncio.wait_for(self.ws.recv(), timeout=within)
        return parse_validator_message(raw)

    async def recv_type(self, kind: str, within: float = 10.0) -> Any:
        """Next message of ``kind`` (skipping others; skipped ``set_weights`` are kept and
        returned first when asked for, since the backend sends each only once)."""
        if kind == "set_weights" and self.weights:
            return self.weights.pop(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            msg = await self.recv(within=max(0.05, deadline - loop.time()))
            if msg.type == kind:
                return msg
            if msg.type == "set_weights":
                self.weights.append(msg)

    async def close(self) -> None:
        await self.ws.close()


async def login(
    backend: Backend,
    hotkey: Keypair,
    *,
    sign_with: Keypair | None = None,
    lite: bool = False,
    runtime: RuntimeVersions | None = None,
) -> tuple[ValidatorClient, Any]:
    """Connect and answer the challenge; returns (client, auth_ok or error message).
    ``runtime`` defaults to this environment's (what a real validator states)."""
    ws = await websockets.connect(f"{backend.ws_url}/ws/validator", max_size=8 * 1024 * 1024)
    client = ValidatorClient(ws, hotkey)
    challenge = await client.recv()
    assert challenge.type == "auth_challenge"
    signer = sign_with or hotkey
    signature = bytes(signer.sign(f"kinitro-auth:{challenge.nonce}:{hotkey.ss58_address}".encode()))
    await client.send(
        AuthResponse(
            hotkey=hotkey.ss58_address,
            nonce=challenge.nonce,
            signature=signature.hex(),
            validator_version="test",
            lite=lite,
            runtime=runtime or local_runtime(),
        )
    )
    return client, await client.recv()


async def wait_for(
    predicate: Callable[[], Any], within: float = 10.0, interval: float = 0.1
) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


def benchmark(
    tasks: int = 1, episodes: int = 2, bid: str = "metaworld/MT1-reach-v3"
) -> dict[str, Any]:
    return {
        "benchmark_id": bid,
        "tasks": [f"reach-v3-{i}" if i else "reach-v3" for i in range(tasks)],
        "episodes_per_task": episodes,
        "max_steps": 50,
    }


async def create_competition(backend: Backend, cid: str = "mt1", **extra: Any) -> dict[str, Any]:
    body = {
        "id": cid,
        "name": cid.upper(),
        "benchmarks": [benchmark()],
        "active": True,
        "min_episodes": 1,  # the test benchmarks are tiny; crowning has its own tests
        **extra,
    }
    async with backend.client() as http:
        resp = await http.post("/api/v1/admin/competitions", json=body)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())


def dumps(obj: Any) -> str:
    return json.dumps(obj)
