"""``kinitro devnet up``: the whole network on this machine, with embedded defaults.

Steps (each idempotent, so a second run on the same data directory resumes):

1. PostgreSQL: a private cluster under the data directory (or ``--database-url``), one
   database for the backend and one per validator; the validators' are migrated here,
   the backend migrates its own when it starts.
2. LocalChain service, wallets with real sr25519 keys, hotkeys registered; validators get
   stake and a validator permit.
3. Backend, then the example competition (admin API).
4. Two validators, each with its own database and its evaluator; a render worker (episode
   videos, after each round's reveal).
5. Three example miners: the scripted template agent, a random agent, and a near-copy of
   the first (one comment changed: another sha256) committed later by another hotkey.
6. Live progress until the first weights are on the chain; then the first round's reveal
   is awaited and checked with ``kinitro round verify`` (``round_verified``), the
   leaderboard and the weights are printed, and the network keeps running until Ctrl-C
   (or exits with ``--exit-after-weights``: 0 only when the round verified).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from kinitro.core.db import dsn
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

MINER_STAKE = 10.0
VALIDATOR_STAKE = 5000.0
RANDOM_AGENT = '''"""A random Meta-World agent: uniform actions; it scores low on purpose."""

import numpy as np


class Agent:
    def __init__(self) -> None:
        self._rng = np.random.default_rng(0)

    def reset(self, task: dict) -> None:
        self._rng = np.random.default_rng(len(str(task)))

    def act(self, observation: np.ndarray) -> np.ndarray:
        return self._rng.uniform(-1.0, 1.0, size=4).astype(np.float32)
'''


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
        self._state_lock = threading.Lock()
        self._failed_since: float | None = None
        self.cluster: Any = None  # the private PostgreSQL cluster, when we started one

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
            from kinitro.core.pgcluster import PostgresCluster

            self.cluster = PostgresCluster(self.layout.postgres)
            admin = self.cluster.ensure()
        names = {"backend": "kinitro_backend"}
        for i, name in enumerate(self.validator_names, 1):
            names[name] = f"kinitro_validator_{i}"
        asyncio.run(_create_databases(admin, list(names.values())))
        from sqlalchemy.engine import make_url

        from kinitro.core import migrations
        from kinitro.jobqueue.models import MIGRATION_TREE

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
        from kinitro.chain.errors import WalletError
        from kinitro.chain.local.client import LocalChain
        from kinitro.chain.wallets import create_wallet, load_coldkey, wallet_info

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
        with self._state_lock:
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

    def submit_miners(self) -> None:
        self.progress.step = "miners"
        scripted = self.layout.miners / "scripted"
        rand = self.layout.miners / "random"
        copycat = self.layout.miners / "copycat"

        def init_random() -> None:
            if not (rand / "kinitro.toml").exists():
                self._kinitro("miner", "init", str(rand), "--name", "random-agent")
                _make_random_agent(rand)

        def init_scripted() -> None:
            if not (scripted / "kinitro.toml").exists():
                self._kinitro("miner", "init", str(scripted), "--name", "scripted-reach")
            if not (copycat / "kinitro.toml").exists():
                # A near-copy of the scripted bundle under another path and hotkey: one
                # comment changed, so another sha256; only its behaviour gives it away.
                shutil.copytree(scripted, copycat, ignore=shutil.ignore_patterns(".kinitro"))
                agent = copycat / "agent.py"
                agent.write_text("# my own agent, honest\n" + agent.read_text())

        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda f: f(), (init_scripted, init_random)))
            plan = [
                ("miner-scripted", scripted, True),
                ("miner-random", rand, True),
                ("miner-copycat", copycat, False),  # uploaded now, committed later
            ]
            list(pool.map(lambda p: self._submit(p[0], p[1], commit=p[2]), plan))
        # The copy is committed a few blocks later, so the scripted miner's is earlier.
        self._wait_blocks(2)
        self._submit("miner-copycat", copycat)
        self.progress.note("3 miners committed (scripted, random, near-copy of scripted)")

    def _submit(self, wallet: str, bundle: Path, *, commit: bool = True) -> None:
        if wallet in self.state.committed:
            return
        env = self.miner_env(wallet)
        upload_record = bundle / ".kinitro" / "upload.json"
        if not upload_record.exists():
            self._kinitro("miner", "upload", str(bundle), "--repo", f"devnet/{wallet}", env=env)
        if not commit:
            return
        out = self._kinitro(
            "miner",
            "commit",
            "--competition",
            COMPETITION_ID,
            "--from-upload",
            str(upload_record),
            "--json",
            env=env,
        )
        block = 0
        with contextlib.suppress(ValueError, KeyError, TypeError):
            block = int(json.loads(out)["block"])
        # commit before publish: the bundle was uploaded private, readable only from now on
        self._kinitro("miner", "publish", str(bundle), env=env)
        with self._state_lock:
            self.state.committed[wallet] = block
            self.state.save(self.layout.data_dir)

    def miner_env(self, wallet: str) -> dict[str, str]:
        return {
            "KINITRO_MINER_CHAIN_BACKEND": "local",
            "KINITRO_MINER_CHAIN_URL": self.chain_url,
            "KINITRO_MINER_NETUID": str(self.state.netuid),
            "KINITRO_MINER_WALLET_PATH": str(self.layout.wallets),
            "KINITRO_MINER_WALLET_NAME": wallet,
            "KINITRO_MINER_HOTKEY": "default",
            "KINITRO_MINER_REGISTRY": "local",
            "KINITRO_MINER_REGISTRY_DIR": str(self.layout.registry),
            "KINITRO_MINER_BACKEND_URL": self.backend_http,
        }

    def _kinitro(self, *args: str, env: dict[str, str] | None = None) -> str:
        import os

        full_env = {**os.environ, **(env or {}), "NO_COLOR": "1", "COLUMNS": "200"}
        result = subprocess.run(
            [sys.executable, "-m", "kinitro", *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=300,
            check=False,
        )
        log = self.layout.logs / "devnet-commands.log"
        with log.open("a") as fh:
            fh.write(f"$ kinitro {' '.join(args)}\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            raise DevnetError(
                f"`kinitro {' '.join(args)}` failed ({result.returncode}):\n"
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result.stdout

    def _wait_blocks(self, n: int) -> None:
        asyncio.run(_wait_blocks(self.chain_url, self.state.netuid, n))

    # --------------------------------------------------------------------- watching --
    def wait_for_weights(self, render: Callable[[], None]) -> None:
        self.progress.step = "evaluating"
        deadline = time.monotonic() + self.opts.timeout_s
        with httpx.Client(base_url=self.backend_http, timeout=10) as http:
            while time.monotonic() < deadline:
                for note in self.supervisor.poll():
                    self.progress.note(note)
                dead = self.supervisor.failed_for_good()
                if dead:
                    names = ", ".join(c.name for c in dead)
                    raise DevnetError(f"{names} keeps crashing; see {self.layout.logs}")
                self._refresh(http)
                render()
                self._check_failures()
                if self._done():
                    self.progress.step = "weights on chain"
                    return
                time.sleep(1.0)
        raise DevnetError(
            f"no weights on chain after {self.opts.timeout_s:.0f}s; logs in {self.layout.logs}"
        )

    def _check_failures(self) -> None:
        """Fail fast with the cause when every job ended and some failed without weights."""
        stats = self.progress.stats or {}
        jobs = stats.get("jobs", {}) if isinstance(stats.get("jobs"), dict) else {}
        failed = int(jobs.get("failed", 0)) + int(jobs.get("timed_out", 0))
        finished = ("completed", "failed", "timed_out", "cancelled")
        busy = sum(int(v) for k, v in jobs.items() if k not in finished)
        if not failed or busy or self.progress.chain_weights_for_miners:
            self._failed_since = None
            return
        now = time.monotonic()
        if self._failed_since is None:
            self._failed_since = now
        elif now - self._failed_since > 30:
            hints = _log_hints(self.layout.logs)
            raise DevnetError(
                f"{failed} evaluation job(s) failed and none is left running.\n{hints}\n"
                f"Logs: {self.layout.logs}"
            )

    def _done(self) -> bool:
        """Weights for a miner are on chain and every submission has been evaluated."""
        miners = set(self.wallet_hotkeys(MINERS))
        weighted = any(w > 0 for k, w in self.progress.chain_weights.items() if k in miners)
        stats = self.progress.stats or {}
        jobs = stats.get("jobs", {}) if isinstance(stats.get("jobs"), dict) else {}
        submissions = stats.get("submissions", {})
        total = sum(submissions.values()) if isinstance(submissions, dict) else 0
        finished = ("completed", "failed", "timed_out", "cancelled")
        busy = sum(int(v) for k, v in jobs.items() if k not in finished)
        self.progress.chain_weights_for_miners = weighted
        scored = len(self.progress.leaderboard) >= len(MINERS)
        return weighted and total >= len(MINERS) and busy == 0 and scored

    def _refresh(self, http: httpx.Client) -> None:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            self.progress.stats = http.get("/api/v1/stats").json()
        with contextlib.suppress(httpx.HTTPError, ValueError):
            board = http.get(f"/api/v1/competitions/{COMPETITION_ID}/leaderboard").json()
            self.progress.leaderboard = list(board.get("rows", board.get("items", [])))
        self.progress.chain_weights = asyncio.run(self._chain_weights())

    async def _chain_weights(self) -> dict[str, float]:
        from kinitro.chain.local.client import LocalChain

        try:
            async with LocalChain(self.chain_url, self.state.netuid) as chain:
                rows = await chain.weights()
                graph = await chain.metagraph()
        except Exception:  # noqa: BLE001 - the chain may be restarting; try again next tick
            return {}
        validators = {n.hotkey for n in graph.neurons if n.validator_permit}
        out: dict[str, float] = {}
        for row in rows:
            if row.validator_hotkey not in validators:
                continue
            for uid, value in row.fractions().items():
                neuron = graph.by_uid(uid)
                if neuron is not None:
                    out[neuron.hotkey] = max(out.get(neuron.hotkey, 0.0), value)
        return out

    def summary(self) -> dict[str, Any]:
        names = self.wallet_names()
        return {
            "competitions": [COMPETITION_ID],
            "leaderboard": self.progress.leaderboard,
            "weights": {names.get(k, k): v for k, v in self.progress.chain_weights.items()},
            "weights_by_hotkey": self.progress.chain_weights,
            "stats": self.progress.stats,
            "elapsed_s": round(time.monotonic() - self.progress.started, 1),
            "round": self.progress.round,
            "round_verified": self.progress.round_verified,
            "backend_url": self.backend_http,
            "chain_url": self.chain_url,
            "data_dir": str(self.layout.data_dir),
        }

    def verify_first_round(self, render: Callable[[], None]) -> None:
        """Wait for the first round's reveal and check it with ``kinitro round verify``."""
        from kinitro.devnet import rounds

        self.progress.step = "round reveal"
        render()
        first = rounds.first_round(self.backend_http, COMPETITION_ID)
        if first is None:
            raise DevnetError("no evaluation round was opened")
        wait = max(0.0, _seconds_until(first["ends_at"])) + 60
        revealed = rounds.wait_revealed(self.backend_http, first["id"], wait)
        if revealed is None:
            raise DevnetError(f"round {first['id']} was not revealed {wait:.0f}s after its end")
        self.progress.note(f"round {first['id']} revealed; verifying")
        render()
        report = rounds.verify(self.backend_http, self.chain_url, self.state.netuid, first["id"])
        self.progress.round = {k: report.get(k) for k in ROUND_SUMMARY if k in report}
        self.progress.round_verified = bool(report.get("ok"))
        verdict = "verified" if self.progress.round_verified else "NOT verified"
        self.progress.note(f"round {first['id']}: {verdict}")

    def wallet_hotkeys(self, names: tuple[str, ...]) -> list[str]:
        inverse = {v: k for k, v in self.wallet_names().items()}
        return [inverse[n] for n in names if n in inverse]

    def wallet_names(self) -> dict[str, str]:
        if self._names is not None:
            return self._names
        from kinitro.chain.wallets import wallet_info

        names: dict[str, str] = {}
        for name in ("owner", *self.validator_names, *MINERS):
            with contextlib.suppress(Exception):
                names[wallet_info(name, "default", self.layout.wallets).hotkey] = name
        if len(names) == 1 + len(self.validator_names) + len(MINERS):
            self._names = names
        return names


# ------------------------------------------------------------------------- helpers --
ROUND_SUMMARY = (
    "round_id",
    "ok",
    "commit_block",
    "commitment_on_chain",
    "reveal_matches",
    "episodes",
    "logs_checked",
    "replayed",
    "failures",
    "error",
)


def _seconds_until(iso: str) -> float:
    from datetime import UTC, datetime

    return (datetime.fromisoformat(iso.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()


async def _create_databases(admin_url: str, names: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn(admin_url))
    try:
        existing = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _wait_blocks(chain_url: str, netuid: int, n: int) -> None:
    from kinitro.chain.local.client import LocalChain

    async with LocalChain(chain_url, netuid) as chain:
        target = await chain.block() + n
        current = 0
        while current < target:
            await asyncio.sleep(0.3)
            current = await chain.block()


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
        raise DevnetError(f"{name} exited with code {code}:\n{_tail(child.log_path)}") from None
    raise DevnetError(f"{name} did not become ready at {url} within {timeout:.0f}s")


def _log_hints(log_dir: Path, limit: int = 5) -> str:
    """The last distinct warning/error messages of the evaluator and validator logs."""
    seen: list[str] = []
    for path in sorted(log_dir.glob("evaluator-*.log")) + sorted(log_dir.glob("validator-*.log")):
        for line in _tail(path, 200).splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("level") in ("warning", "error") and record.get("msg") not in seen:
                seen.append(str(record.get("msg")))
    return "\n".join(f"  {path_msg}" for path_msg in seen[-limit:]) or "  (no warnings logged)"


def _tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _make_random_agent(bundle: Path) -> None:
    import tomllib

    manifest = bundle / "kinitro.toml"
    data = tomllib.loads(manifest.read_text())
    module = str(data.get("entrypoint", "agent:Agent")).split(":")[0]
    (bundle / f"{module.replace('.', '/')}.py").write_text(
        RANDOM_AGENT.replace("class Agent", f"class {data['entrypoint'].split(':')[1]}")
    )
    text = manifest.read_text()
    if "description" in data:
        text = text.replace(str(data["description"]), "Uniformly random actions (a baseline)")
    manifest.write_text(text)


def render_tables(devnet: Devnet) -> Table:
    progress = devnet.progress
    names = devnet.wallet_names()
    grid = Table.grid(padding=(0, 2))
    elapsed = time.monotonic() - progress.started
    stats = progress.stats or {}
    head = Table(title=f"Kinitro devnet — {progress.step} — {elapsed:.0f}s", show_header=False)
    head.add_row("backend", devnet.backend_http)
    head.add_row("data", str(devnet.layout.data_dir))
    for key in ("submissions", "jobs", "episodes"):
        if key in stats:
            head.add_row(
                key, json.dumps(stats[key]) if isinstance(stats[key], dict) else str(stats[key])
            )
    grid.add_row(head)
    grid.add_row(leaderboard_table(progress.leaderboard, names))
    if progress.chain_weights:
        grid.add_row(weights_table(progress.chain_weights, names))
    for note in progress.notes:
        grid.add_row(f"[dim]{note}[/dim]")
    return grid


def leaderboard_table(rows: list[dict[str, Any]], names: dict[str, str]) -> Table:
    table = Table(title="Leaderboard")
    for col in ("rank", "miner", "success", "95% CI", "episodes", "note"):
        table.add_column(col)
    for row in rows:
        hotkey = str(row.get("miner_hotkey", ""))
        rate = row.get("success_rate")
        lo, hi = row.get("ci_low"), row.get("ci_high")
        kind = (row.get("detail") or {}).get("copy_kind")
        note = ""
        if row.get("copy_of"):
            same = "acts like" if kind == "behaviour" else "copy of"
            note = f"{same} an earlier commitment: earns 0"
        if not row.get("eligible", True) and not note:
            note = "not eligible"
        table.add_row(
            str(row.get("rank", "")),
            names.get(hotkey, hotkey[:12]),
            "-" if rate is None else f"{rate:.0%}",
            "-" if lo is None or hi is None else f"{lo:.0%}–{hi:.0%}",
            str(row.get("episodes", "")),
            note,
        )
    return table


def weights_table(weights: dict[str, float], names: dict[str, str]) -> Table:
    table = Table(title="Weights on chain")
    table.add_column("miner")
    table.add_column("weight", justify="right")
    for hotkey, value in sorted(weights.items(), key=lambda kv: -kv[1]):
        table.add_row(names.get(hotkey, hotkey[:12]), f"{value:.3f}")
    return table


def run_up(opts: UpOptions) -> int:
    console = Console(stderr=opts.json_output)
    devnet = Devnet(opts, console)
    interrupted = False

    def _on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with Live(
            render_tables(devnet), console=console, refresh_per_second=2, transient=False
        ) as live:

            def render() -> None:
                live.update(render_tables(devnet))

            for step in (
                devnet.start_postgres,
                devnet.start_chain,
                devnet.setup_wallets,
                devnet.start_backend,
                devnet.create_competition,
                devnet.start_validators,
                devnet.submit_miners,
            ):
                step()
                render()
            devnet.wait_for_weights(render)
            devnet.verify_first_round(render)
            render()
        summary = devnet.summary()
        if opts.json_output:
            sys.stdout.write(json.dumps(summary) + "\n")
            sys.stdout.flush()
        else:
            console.print()
            console.print(f"[green]First weights are on chain after {summary['elapsed_s']}s.")
            rnd = summary["round"]
            if summary["round_verified"]:
                console.print(
                    f"[green]Round {rnd.get('round_id')} revealed and verified: commitment on "
                    f"chain at block {rnd.get('commit_block')}, {rnd.get('episodes')} episodes' "
                    f"seeds and logs checked, {rnd.get('replayed')} replayed."
                )
            else:
                console.print(f"[red]Round {rnd.get('round_id')} did NOT verify: {rnd}")
        if opts.exit_after_weights:
            return 0 if summary["round_verified"] else 1
        console.print("The network keeps running. Press Ctrl-C to stop it.")
        while True:
            for note in devnet.supervisor.poll():
                console.print(f"[yellow]{note}")
            time.sleep(1.0)
    except KeyboardInterrupt:
        interrupted = True
        return 130
    except DevnetError as exc:
        console.print()
        console.print(f"[red]devnet: {exc}", highlight=False)
        return 1
    finally:
        if interrupted:
            console.print("Stopping the devnet…")
        devnet.supervisor.stop_all()
        if devnet.cluster is not None:
            with contextlib.suppress(Exception):
                devnet.cluster.stop()
        if interrupted:
            console.print("Stopped. Run it again to resume from the same data directory.")
