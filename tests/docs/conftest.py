"""Fixtures for the executed doc walkthroughs (``<!-- doc-test: run -->`` blocks).

``local_chain_for_docs`` gives each walkthrough what a new user would have after
installing Kinitro and starting ``kinitro chain run``: a real LocalChain process, a scratch
working directory, and the ``KINITRO_*`` environment a guide tells its reader to export
(chain URL, wallets directory, local artifact registry, database URLs).

``live_devnet`` is a running ``kinitro devnet up`` (its own PostgreSQL cluster, chain,
backend, validators, evaluators and example miners) for the guides whose walkthrough is
written against a devnet (``test_docs_commands.DEVNET_DOCS``): they point their shell at
it with ``eval "$(kinitro devnet env)"`` and find everything else from there. It is
started once per module, only when such a guide is run, and stopped with Ctrl-C as a user
would.

One LocalChain serves the whole module (fast blocks, small rate limits). Every document
gets its own scratch directory, wallets directory, registry and databases, created on
first use and shared by that document's blocks, so a guide's blocks run in order as one
session: a wallet created in its first block is there in the next.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from kinitro.chain.local.process import LocalChainProcess, free_port
from kinitro.core.db import dsn

NETUID = 1
DEVNET_READY_S = 240.0


@dataclass
class _DocsWorld:
    chain: LocalChainProcess
    root: Path
    admin_url: str
    per_doc: dict[str, dict[str, Any]] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)


def _database_url(admin_url: str, name: str) -> str:
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _admin(admin_url: str, statement: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn(admin_url))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def _create_database(world: _DocsWorld, purpose: str) -> str:
    name = f"kinitro_docs_{purpose}_{uuid.uuid4().hex[:10]}"
    _admin(world.admin_url, f'CREATE DATABASE "{name}"')
    world.databases.append(name)
    return _database_url(world.admin_url, name)


@pytest.fixture(scope="module")
def _docs_world(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str
) -> Iterator[_DocsWorld]:
    root = tmp_path_factory.mktemp("docs")
    root.chmod(0o755)  # the sandbox runs agents as an unprivileged uid: bundles must be readable
    with LocalChainProcess(
        root / "chain",
        block_interval=0.2,
        tempo=20,  # 4 s epochs: commitment space is never the bottleneck
        weights_rate_limit=2,
        min_validator_stake=1000.0,
    ) as chain:
        world = _DocsWorld(chain=chain, root=root, admin_url=pg_admin_url)
        try:
            yield world
        finally:
            for name in world.databases:
                _admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _doc_session(world: _DocsWorld, doc: str) -> dict[str, Any]:
    if doc in world.per_doc:
        return world.per_doc[doc]
    slug = Path(doc).stem.replace(".", "-")
    home = world.root / slug
    cwd = home / "work"
    cwd.mkdir(parents=True)
    wallets = home / "wallets"
    registry = home / "registry"
    url = world.chain.url
    validator_db = _create_database(world, "validator")
    backend_db = _create_database(world, "backend")
    env = {
        # chain + wallets (kinitro chain …, validator run)
        "KINITRO_CHAIN_BACKEND": "local",
        "KINITRO_CHAIN_LOCAL_URL": url,
        "KINITRO_CHAIN_NETUID": str(NETUID),
        "KINITRO_CHAIN_WALLET_PATH": str(wallets),
        # miner CLI (its own settings section)
        "KINITRO_MINER_CHAIN_BACKEND": "local",
        "KINITRO_MINER_CHAIN_URL": url,
        "KINITRO_MINER_NETUID": str(NETUID),
        "KINITRO_MINER_WALLET_PATH": str(wallets),
        "KINITRO_MINER_REGISTRY": "local",
        "KINITRO_MINER_REGISTRY_DIR": str(registry),
        # nothing listens there: `miner status` must cope with an absent backend
        "KINITRO_MINER_BACKEND_URL": f"http://127.0.0.1:{free_port()}",
        # validator node + evaluator share one database
        "KINITRO_VALIDATOR_DATABASE_URL": validator_db,
        "KINITRO_EVALUATOR_DATABASE_URL": validator_db,
        "KINITRO_EVALUATOR_ARTIFACTS_DIR": str(registry),
        "KINITRO_EVALUATOR_MEDIA_URL": str(home / "media"),
        # backend
        "KINITRO_BACKEND_DATABASE_URL": backend_db,
        "KINITRO_BACKEND_CHAIN_URL": url,
        "KINITRO_BACKEND_NETUID": str(NETUID),
        "KINITRO_BACKEND_REGISTRY_DIR": str(registry),
        "KINITRO_BACKEND_PORT": str(free_port()),
    }
    session = {"cwd": cwd, "env": env}
    world.per_doc[doc] = session
    return session


@pytest.fixture
def local_chain_for_docs(request: pytest.FixtureRequest, _docs_world: _DocsWorld) -> dict[str, Any]:
    """``{"cwd": Path, "env": dict}`` for the document under test (see module docstring)."""
    callspec = getattr(request.node, "callspec", None)
    doc = str(callspec.params.get("doc", request.node.name)) if callspec else request.node.name
    return _doc_session(_docs_world, doc)


def _devnet_ready(data_dir: Path) -> bool:
    """The devnet's ports are recorded and its backend runs the example competition."""
    try:
        state = json.loads((data_dir / "devnet.json").read_text())
        url = f"http://127.0.0.1:{int(state['backend_port'])}/api/v1/competitions"
        return any(c["id"] == "reach" for c in httpx.get(url, timeout=2).json())
    except (OSError, ValueError, KeyError, TypeError, httpx.HTTPError):
        return False


@pytest.fixture(scope="module")
def live_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The data directory of a running ``kinitro devnet up`` (tiny example competition),
    once its backend serves the competitions; stopped with SIGINT afterwards."""
    data_dir = tmp_path_factory.mktemp("live-devnet") / "devnet"
    data_dir.parent.chmod(0o755)  # the sandbox runs agents as an unprivileged uid
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINITRO_")}
    log = (data_dir.parent / "devnet-up.log").open("w")
    argv = ["devnet", "up", "--data-dir", str(data_dir), "--json", "--episodes", "1"]
    argv += ["--max-steps", "50", "--round-seconds", "10", "--timeout", "900"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kinitro", *argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**env, "COLUMNS": "160", "NO_COLOR": "1"},
    )
    try:
        deadline = time.monotonic() + DEVNET_READY_S
        while not _devnet_ready(data_dir):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    f"devnet not ready (exit {proc.returncode}):\n"
                    + (data_dir.parent / "devnet-up.log").read_text()[-3000:]
                )
            time.sleep(0.5)
        yield data_dir
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
