"""The devnet's network: PostgreSQL, LocalChain, wallets, the backend, the competitions and
the validators with their evaluators, started in this order by ``kinitro devnet up``.

Each step is idempotent (it looks before it creates), so a second run on the same data
directory resumes: the ports, secrets and commitments are in ``DevnetState``.
``Devnet`` owns the supervisor of the child processes and the progress the live view shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from sqlalchemy.engine import make_url

from kinitro.chain.errors import WalletError
from kinitro.chain.local.client import LocalChain
from kinitro.chain.wallets import create_wallet, load_coldkey, wallet_info
from kinitro.core import migrations
from kinitro.core.db import dsn
from kinitro.core.pgcluster import PostgresCluster
from kinitro.core.processes import ProcessExited, wait_http_ok
from kinitro.devnet.layout import (
    COMPETITION_ID,
    MINERS,
    VALIDATORS,
    DevnetState,
    Layout,
)
from kinitro.devnet.rounds import DEFAULT_ROUND_SECONDS
from kinitro.devnet.supervisor import Supervisor
from kinitro.jobqueue.models import MIGRATION_TREE

MINER_STAKE = 10.0
VALIDATOR_STAKE = 5000.0


class DevnetError(RuntimeError):
    """A devnet step failed; the message says which and where the log is."""


@dataclass
class UpOptions:
    data_dir: Path
    database_url: str | None = None
    exit_after_weights: bool = False
    json_output: bool = False
    timeout_s: float = 900.0
    episodes_per_task: int = 10
    max_steps: int = 150
    validators: int = 2
    round_seconds: int = DEFAULT_ROUND_SECONDS
    """Length of a round (the backend's ``round_duration_s``)."""
    presets: tuple[str, ...] = ()
    """Competition presets (``kinitro.protocol.presets``) created next to the reach one."""


@dataclass
class Progress:
    started: float = field(default_factory=time.monotonic)
    step: str = "starting"
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    chain_weights: dict[str, float] = field(default_factory=dict)
    chain_weights_for_miners: bool = False
    round: dict[str, Any] = field(default_factory=dict)
    round_verified: bool = False

    def note(self, text: str) -> None:
        self.notes.append(f"{time.monotonic() - self.started:6.1f}s  {text}")
        self.notes = self.notes[-8:]


class Devnet:
    """Drives the steps; owns the supervisor of child processes."""

    def __init__(self, opts: UpOptions, console: Console) -> None:
        self.opts = opts
        self.console = console
        self.layout = Layout(opts.data_dir.resolve())
        self.layout.ensure()
        self.state = DevnetState.load(self.layout.data_dir)
        self.state.save(self.layout.data_dir)
        self.supervisor = Supervisor(self.layout.logs)
        self.progress = Progress()
        self.database_urls: dict[str, str] = {}
        self.validator_names = VALIDATORS[: opts.validators]
        self._names: dict[str, str] | None = None
        self.state_lock = threading.Lock()
        self.cluster: PostgresCluster | None = None  # when we started one

    # ---------------------------------------------------------------- URLs and envs --
    @property
    def chain_url(self) -> str:
        return f"http://127.0.0.1:{self.state.chain_port}"

    @property
    def backend_http(self) -> str:
        return f"http://127.0.0.1:{self.state.backend_port}"

    def chain_env(self, wallet: str) -> dict[str, str]:
        return {
            "KINITRO_CHAIN_BACKEND": "local",
            "KINITRO_CHAIN_LOCAL_URL": self.chain_url,
            "KINITRO_CHAIN_NETUID": str(self.state.netuid),
            "KINITRO_CHAIN_WALLET_PATH": str(self.layout.wallets),
            "KINITRO_CHAIN_WALLET_NAME": wallet,
            "KINITRO_CHAIN_HOTKEY": "default",
        }

    # ------------------------------------------------------------------------ steps --
    def start_postgres(self) -> None:
        self.progress.step = "PostgreSQL"
        if self.opts.database_url:
            admin = self.opts.database_url
        else:
            self.cluster = PostgresCluster(self.layout.postgres)
            admin = self.cluster.ensure()
        names = {"backend": "kinitro_backend"}
        for i, name in enumerate(self.validator_names, 1):
            names[name] = f"kinitro_validator_{i}"
        asyncio.run(_create_databases(admin, list(names.values())))
        for role_name, db in names.items():
            url = make_url(admin).set(database=db).render_as_string(hide_password=False)
            self.database_urls[role_name] = url
            if role_name != "backend":  # the backend migrates its own at start
                migrations.upgrade(MIGRATION_TREE, url)
        self.progress.note(f"PostgreSQL ready ({len(names)} databases)")

    def start_chain(self) -> None:
        self.progress.step = "LocalChain"
        self.supervisor.start(
            "chain",
            [
                "chain",
                "run",
                "--data-dir",
                str(self.layout.chain),
                "--port",
                str(self.state.chain_port),
                "--block-interval",
                "1.0",
                "--tempo",
                "100",
                "--weights-rate-limit",
                "10",
                "--min-validator-stake",
                "1000",
            ],
        )
        _wait_http(f"{self.chain_url}/health", "chain", self.supervisor, timeout=60)
        self.progress.note(f"LocalChain serving on {self.chain_url}")

    def setup_wallets(self) -> None:
        self.progress.step = "wallets"
        asyncio.run(self._setup_wallets())
        self.progress.note(
            f"{len(self.validator_names)} validators and {len(MINERS)} miners registered"
        )

    async def _setup_wallets(self) -> None:
        async with LocalChain(self.chain_url, self.state.netuid) as chain:
            graph = await chain.metagraph()
            # The subnet owner registers first, so it holds uid 0 (where burned weight goes).
            for name in ("owner", *self.validator_names, *MINERS):
                try:
                    info = wallet_info(name, "default", self.layout.wallets)
                except WalletError:
                    info = create_wallet(name, "default", self.layout.wallets)
                if graph.by_hotkey(info.hotkey) is not None:
                    continue
                coldkey = load_coldkey(name, self.layout.wallets)
                await chain.register(coldkey, info.hotkey)
                if name == "owner":
                    continue
                if name in VALIDATORS:
                    await chain.set_stake(coldkey, info.hotkey, VALIDATOR_STAKE)
                    await chain.set_permit(coldkey, info.hotkey, True)
                else:
                    await chain.set_stake(coldkey, info.hotkey, MINER_STAKE)
                    await chain.set_permit(coldkey, info.hotkey, False)

    def start_backend(self) -> None:
        self.progress.step = "backend"
        env = {
            **self.chain_env("owner"),
            "KINITRO_BACKEND_ENVIRONMENT": "devnet",
            "KINITRO_BACKEND_HOST": "127.0.0.1",
            "KINITRO_BACKEND_PORT": str(self.state.backend_port),
            "KINITRO_BACKEND_DATABASE_URL": self.database_urls["backend"],
            "KINITRO_BACKEND_CHAIN": "local",
            "KINITRO_BACKEND_CHAIN_URL": self.chain_url,
            "KINITRO_BACKEND_NETUID": str(self.state.netuid),
            "KINITRO_BACKEND_REGISTRY": "local",
            "KINITRO_BACKEND_REGISTRY_DIR": str(self.layout.registry),
            "KINITRO_BACKEND_MEDIA_URL": str(self.layout.media),
            # every validator evaluates every job, and all of them are the quorum
            "KINITRO_BACKEND_REPLICATION": str(len(self.validator_names)),
            "KINITRO_BACKEND_MIN_VALIDATORS": str(len(self.validator_names)),
            "KINITRO_BACKEND_SEED_SECRET": self.state.seed_secret,
            # the subnet owner's hotkey commits each round on chain before its jobs go out
            "KINITRO_BACKEND_ROUND_WALLET_NAME": "owner",
            "KINITRO_BACKEND_ROUND_WALLET_PATH": str(self.layout.wallets),
            "KINITRO_BACKEND_ADMIN_API_KEY": self.state.admin_api_key,
            "KINITRO_BACKEND_SCORING_INTERVAL_S": "5",
            "KINITRO_BACKEND_CHAIN_SCAN_INTERVAL_S": "1",
            "KINITRO_BACKEND_SCHEDULER_INTERVAL_S": "1",
            "KINITRO_BACKEND_STATS_INTERVAL_S": "3",
            "KINITRO_BACKEND_ROUND_DURATION_S": str(self.opts.round_seconds),
            # a near-copy is found on this many shared episodes (the devnet plays few)
            "KINITRO_BACKEND_COPY_MIN_EPISODES": str(min(10, self.opts.episodes_per_task)),
        }
        self.supervisor.start("backend", ["backend", "run"], env)
        _wait_http(f"{self.backend_http}/health", "backend", self.supervisor, timeout=90)
        self.progress.note(f"backend serving on {self.backend_http}")

    def create_competition(self) -> None:
        self.progress.step = "competition"
        headers = {"Authorization": f"Bearer {self.state.admin_api_key}"}
        with httpx.Client(base_url=self.backend_http, timeout=15, headers=headers) as http:
            for name in self.opts.presets:
                self._create_preset_competition(http, name)
            existing = http.get(f"/api/v1/competitions/{COMPETITION_ID}")
            if existing.status_code == 200:
                return
            # The quick reach competition: no knobs, no limit on the expert baseline (a
            # scripted expert solves reach; this one shows the network, not a contest).
            body = {
                "id": COMPETITION_ID,
                "name": "Meta-World reach (devnet)",
                "benchmarks": [
                    {
                        "provider": "metaworld",
                        "benchmark_id": "metaworld/MT1-reach-v3",
                        "tasks": ["reach-v3"],
                        "episodes_per_task": self.opts.episodes_per_task,
                        "max_steps": self.opts.max_steps,
                        "observation_mode": "state",
                        "conditions": {},
                    }
                ],
                "max_expert_baseline": None,
                "points": 100,
                "min_success_rate": 0.5,
                # crowned on a full evaluation (every episode scored), never on fewer
                "min_episodes": self.opts.episodes_per_task,
                "approval_mode": "auto",
                "active": True,
            }
            response = http.post("/api/v1/admin/competitions", json=body)
            if response.status_code not in (200, 201, 409):
                raise DevnetError(
                    f"creating the competition failed: {response.status_code} {response.text}"
                )
        self.progress.note(f"competition {COMPETITION_ID!r} active")

    def _create_preset_competition(self, http: httpx.Client, name: str) -> None:
        if http.get(f"/api/v1/competitions/{name}").status_code == 200:
            return
        body = {"id": name, "name": f"{name} preset (devnet)", "preset": name, "active": True}
        response = http.post("/api/v1/admin/competitions", json=body, params={"force": "true"})
        if response.status_code not in (200, 201, 409):
            raise DevnetError(
                f"creating the {name!r} competition failed: {response.status_code} {response.text}"
            )
        self.progress.note(f"competition {name!r} active (preset, forced: no baselines)")

    def start_validators(self) -> None:
        self.progress.step = "validators"
        for i, name in enumerate(self.validator_names, 1):
            db = self.database_urls[name]
            env = {
                **self.chain_env(name),
                "KINITRO_VALIDATOR_ENVIRONMENT": "devnet",
                "KINITRO_VALIDATOR_BACKEND_URL": (
                    f"ws://127.0.0.1:{self.state.backend_port}/ws/validator"
                ),
                "KINITRO_VALIDATOR_DATABASE_URL": db,
                "KINITRO_VALIDATOR_WEIGHTS_RATE_LIMIT_BLOCKS": "10",
                "KINITRO_VALIDATOR_BLOCK_TIME_S": "1",
                "KINITRO_VALIDATOR_RECONNECT_MAX_S": "5",
                "KINITRO_VALIDATOR_METRICS_PORT": str(self.state.metrics_port(name)),
            }
            self.supervisor.start(name, ["validator", "run"], env)
            evaluator_env = {
                **self.chain_env(name),
                "KINITRO_EVALUATOR_ENVIRONMENT": "devnet",
                "KINITRO_EVALUATOR_DATABASE_URL": db,
                "KINITRO_EVALUATOR_CONCURRENCY": "1",
                "KINITRO_EVALUATOR_WORKERS_PER_JOB": "1",
                "KINITRO_EVALUATOR_RAY_NUM_CPUS": "1",
                "KINITRO_EVALUATOR_MEDIA_URL": str(self.layout.media),
                "KINITRO_EVALUATOR_ARTIFACTS_DIR": str(self.layout.registry),
                "KINITRO_EVALUATOR_BUNDLE_CACHE_DIR": str(self.layout.data_dir / f"bundles-{i}"),
                "KINITRO_EVALUATOR_METRICS_PORT": str(self.state.metrics_port(f"evaluator-{i}")),
                # A development network: sandboxes use cgroups where this machine has them
                # (root, or delegated v2), else run with a loud warning in the log (#18).
                "KINITRO_EVALUATOR_SANDBOX_ALLOW_NO_CGROUP": "true",
            }
            self.supervisor.start(f"evaluator-{i}", ["evaluator", "run"], evaluator_env)
        with self.state_lock:
            self.state.save(self.layout.data_dir)  # the metrics ports, for `devnet status`
        self.progress.note(f"{len(self.validator_names)} validators and evaluators started")
        # episode videos, rendered from the action logs after each round's reveal
        self.supervisor.start(
            "render-worker",
            ["evaluator", "render-worker", "--media", str(self.layout.media)],
            {
                "KINITRO_RENDER_BACKEND_URL": self.backend_http,
                "KINITRO_RENDER_API_KEY": self.state.admin_api_key,
            },
        )

    # ---------------------------------------------------------------------- wallets --

    def wallet_hotkeys(self, names: tuple[str, ...]) -> list[str]:
        inverse = {v: k for k, v in self.wallet_names().items()}
        return [inverse[n] for n in names if n in inverse]

    def wallet_names(self) -> dict[str, str]:
        if self._names is not None:
            return self._names
        names: dict[str, str] = {}
        for name in ("owner", *self.validator_names, *MINERS):
            with contextlib.suppress(Exception):
                names[wallet_info(name, "default", self.layout.wallets).hotkey] = name
        if len(names) == 1 + len(self.validator_names) + len(MINERS):
            self._names = names
        return names


# ------------------------------------------------------------------------- helpers --
async def _create_databases(admin_url: str, names: list[str]) -> None:
    conn = await asyncpg.connect(dsn(admin_url))
    try:
        existing = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _wait_http(url: str, name: str, supervisor: Supervisor, timeout: float) -> None:
    def alive() -> bool:
        child = supervisor.children.get(name)
        return child is None or child.process is None or child.alive()

    try:
        if wait_http_ok(url, timeout, alive=alive, interval=0.3):
            return
    except ProcessExited:
        child = supervisor.children[name]
        code = child.process.returncode if child.process is not None else None
        raise DevnetError(f"{name} exited with code {code}:\n{tail(child.log_path)}") from None
    raise DevnetError(f"{name} did not become ready at {url} within {timeout:.0f}s")


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""
