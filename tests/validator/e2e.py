"""A small real network for the validator acceptance tests: LocalChain service, backend
process, validator process (``kinitro validator run``) and a scripted evaluator process,
each a real subprocess on loopback with its own log file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bittensor_wallet import Keypair

from kinitro.chain.local.client import LocalChain
from kinitro.chain.local.process import LocalChainProcess
from kinitro.chain.wallets import create_wallet, load_coldkey, load_hotkey
from kinitro.protocol.commitment import encode_commitment
from kinitro.storage.artifacts import LocalRegistry

REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = "validator-e2e-admin-key-0123456789"
COMPETITION = "vtest"
NETUID = 1
BENCHMARKS = [
    {
        "provider": "metaworld",
        "benchmark_id": f"metaworld/MT1-{task}-v3",
        "tasks": [f"{task}-v3"],
        "episodes_per_task": 4,
        "max_steps": 50,
        "observation_mode": "state",
    }
    for task in ("reach", "push")
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_dir: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        assert self.popen is None or self.popen.poll() is not None
        self.starts += 1
        log = (self.log_dir / f"{self.name}.log").open("ab")
        log.write(f"\n---- start #{self.starts} ----\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.alive:
            assert self.popen is not None
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def tail(self, lines: int = 40) -> str:
        path = self.log_dir / f"{self.name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )


def kinitro_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "kinitro", *args]


@dataclass
class Node:
    """One validator node: ``kinitro validator run`` + its scripted evaluator + its DB."""

    name: str
    db: str
    hotkey: str
    validator: Proc
    evaluator: Proc


@dataclass
class Network:
    root: Path
    backend_db: str
    validator_dbs: list[str]
    chain_proc: LocalChainProcess | None = None
    backend: Proc | None = None
    nodes: list[Node] = field(default_factory=list)
    backend_port: int = field(default_factory=free_port)
    registry: LocalRegistry | None = None
    miner_coldkey: Keypair = field(
        default_factory=lambda: Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
    )
    miners: list[Keypair] = field(default_factory=list)
    backend_env: dict[str, str] = field(default_factory=dict)
    """Extra backend settings (``KINITRO_BACKEND_*``), e.g. for the backend soak test."""

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    # ------------------------------------------------------------------ setup

    async def start(self, *, evaluator_delay_s: float = 0.05) -> None:
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.chain_proc = LocalChainProcess(
            self.root / "chain",
            block_interval=0.1,
            weights_rate_limit=2,
            tempo=20,  # 2-4 s epochs: commitment space is never the bottleneck
            min_validator_stake=100.0,
            log_path=logs / "chain.log",
        )
        self.chain_proc.__enter__()
        wallets = self.root / "wallets"
        names = [f"val{i}" for i in range(len(self.validator_dbs))]
        async with LocalChain(self.chain_proc.url, NETUID) as chain:
            for name in names:
                create_wallet(name, "default", wallets)
                hotkey = load_hotkey(name, "default", wallets).ss58_address
                await chain.register(load_coldkey(name, wallets), hotkey)
                await chain.set_stake(load_coldkey(name, wallets), hotkey, 1000)
        self.registry = LocalRegistry(self.root / "registry")

        self.backend = Proc(
            "backend",
            kinitro_argv("backend", "run"),
            {
                "KINITRO_BACKEND_DATABASE_URL": self.backend_db,
                "KINITRO_BACKEND_MIGRATE_ON_START": "false",
                "KINITRO_BACKEND_HOST": "127.0.0.1",
                "KINITRO_BACKEND_PORT": str(self.backend_port),
                "KINITRO_BACKEND_CHAIN_URL": self.chain_proc.url,
                "KINITRO_BACKEND_NETUID": str(NETUID),
                "KINITRO_BACKEND_REGISTRY_DIR": str(self.root / "registry"),
                "KINITRO_BACKEND_MIN_VALIDATOR_STAKE": "100",
                "KINITRO_BACKEND_REPLICATION": "1",
                "KINITRO_BACKEND_MIN_VALIDATORS": "1",
                "KINITRO_BACKEND_SCHEDULER_INTERVAL_S": "0.2",
                "KINITRO_BACKEND_CHAIN_SCAN_INTERVAL_S": "0.3",
                "KINITRO_BACKEND_METAGRAPH_TTL_S": "0.5",
                "KINITRO_BACKEND_SCORING_INTERVAL_S": "1",
                "KINITRO_BACKEND_STATS_INTERVAL_S": "5",
                "KINITRO_BACKEND_HEARTBEAT_INTERVAL_S": "1",
                "KINITRO_BACKEND_HEARTBEAT_TIMEOUT_S": "10",
                "KINITRO_BACKEND_LEASE_S": "120",
                "KINITRO_BACKEND_ADMIN_API_KEY": ADMIN_KEY,
                "KINITRO_BACKEND_DB_POOL_SIZE": "5",
                "KINITRO_BACKEND_ENVIRONMENT": "devnet",
                "KINITRO_BACKEND_LOG_LEVEL": "WARNING",
                **self.backend_env,
            },
            logs,
        )
        self.start_backend()
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=self.http, headers=headers, timeout=15) as client:
            response = await client.post(
                "/api/v1/admin/competitions",
                json={
                    "id": COMPETITION,
                    "name": "validator e2e",
                    "benchmarks": BENCHMARKS,
                    "points": 100,
                    "min_success_rate": 0.1,
                    "min_episodes": 8,  # both benchmarks' 4 episodes
                    "approval_mode": "auto",
                    "replication": 1,
                    "active": True,
                },
            )
            assert response.status_code in (200, 201), response.text

        for name, db in zip(names, self.validator_dbs, strict=True):
            node = Node(
                name,
                db,
                load_hotkey(name, "default", wallets).ss58_address,
                self._validator_proc(name, db, wallets, logs),
                Proc(
                    f"evaluator-{name}",
                    [
                        sys.executable,
                        str(Path(__file__).with_name("scripted_evaluator.py")),
                        db,
                        str(evaluator_delay_s),
                    ],
                    {"PYTHONPATH": str(REPO)},
                    logs,
                ),
            )
            node.validator.start()
            node.evaluator.start()
            self.nodes.append(node)

    def _validator_proc(self, name: str, db: str, wallets: Path, logs: Path) -> Proc:
        assert self.chain_proc is not None
        return Proc(
            f"validator-{name}",
            kinitro_argv("validator", "run", "--log-level", "INFO"),
            {
                "KINITRO_VALIDATOR_BACKEND_URL": f"ws://127.0.0.1:{self.backend_port}/ws/validator",
                "KINITRO_VALIDATOR_DATABASE_URL": db,
                "KINITRO_VALIDATOR_RECONNECT_MIN_S": "0.1",
                "KINITRO_VALIDATOR_RECONNECT_MAX_S": "1",
                "KINITRO_VALIDATOR_OUTBOX_POLL_S": "1",
                "KINITRO_VALIDATOR_WEIGHTS_RATE_LIMIT_BLOCKS": "2",
                "KINITRO_VALIDATOR_BLOCK_TIME_S": "0.1",
                "KINITRO_VALIDATOR_WEIGHTS_RETRY_S": "0.2",
                "KINITRO_CHAIN_LOCAL_URL": self.chain_proc.url,
                "KINITRO_CHAIN_NETUID": str(NETUID),
                "KINITRO_CHAIN_WALLET_PATH": str(wallets),
                "KINITRO_CHAIN_WALLET_NAME": name,
                "KINITRO_CHAIN_HOTKEY": "default",
            },
            logs,
        )

    def start_backend(self) -> None:
        assert self.backend is not None
        self.backend.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.backend.alive:
                raise RuntimeError(f"backend exited:\n{self.backend.tail()}")
            try:
                if httpx.get(f"{self.http}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"backend not healthy:\n{self.backend.tail()}")

    async def submit_miner(self) -> None:
        """Register a new miner, upload an artifact and commit it (→ one job per benchmark)."""
        assert self.chain_proc is not None and self.registry is not None
        miner = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
        index = len(self.miners)
        archive = self.root / f"bundle-{index}.tar.gz"
        archive.write_bytes(os.urandom(256) + f"miner {index}".encode())
        ref = self.registry.upload(archive, f"miner{index}/agent")
        async with LocalChain(self.chain_proc.url, NETUID) as chain:
            await chain.register(self.miner_coldkey, miner.ss58_address)
            text = encode_commitment(
                competition_id=COMPETITION,
                registry="local",
                repo=ref.repo,
                revision=ref.revision,
                sha256=ref.sha256,
            )
            await chain.commit(miner, text)
        self.miners.append(miner)

    def close(self) -> None:
        for node in self.nodes:
            node.evaluator.stop()
            node.validator.stop()
        if self.backend is not None:
            self.backend.stop()
        if self.chain_proc is not None:
            self.chain_proc.__exit__(None, None, None)

    # ------------------------------------------------------------------ backend views

    def get(self, path: str, **params: Any) -> Any:
        for _ in range(30):  # a polite client: waits out the backend's rate limit
            response = httpx.get(f"{self.http}{path}", params=params, timeout=10)
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        response.raise_for_status()
        return response.json()

    def all_pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.get(path, limit=200, offset=offset, **params)
            items.extend(page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return items
