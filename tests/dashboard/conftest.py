"""Fixtures of the dashboard browser tests: the built dashboard + node deps, a LocalChain
service, and a seeded backend process (see :mod:`.stack`)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kinitro.chain.local.client import LocalChain
from kinitro.chain.local.process import LocalChainProcess
from kinitro.storage.artifacts import LocalRegistry
from kinitro.storage.media import LocalMediaStore

from .stack import BackendProcess, Stack, seed

ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = ROOT / "src" / "kinitro" / "backend" / "web"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
_NETUIDS = itertools.count(300 + (os.getpid() % 50) * 20)


@pytest.fixture(scope="session")
def web_ready() -> Path:
    """The dashboard is built and playwright-core is installed (scripts/build-web)."""
    assert shutil.which("node"), "Node.js is required for the browser tests (scripts/bootstrap)"
    assert CHROMIUM.exists(), "Debian's chromium is required (scripts/bootstrap installs it)"
    subprocess.run([str(ROOT / "scripts" / "build-web")], check=True, timeout=600)
    assert (WEB_DIR / "node_modules" / "playwright-core").is_dir()
    assert (WEB_DIR / "static" / "index.html").is_file()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return WEB_DIR


@pytest.fixture(scope="session")
def chain_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalChainProcess]:
    data_dir = tmp_path_factory.mktemp("dashboard-chain") / "chain"
    with LocalChainProcess(
        data_dir,
        block_interval=0.1,
        tempo=20,  # 2-4 s epochs: commitment space is never the bottleneck
        weights_rate_limit=1,
        min_validator_stake=100.0,
    ) as proc:
        yield proc


@pytest.fixture
async def stack(
    web_ready: Path, chain_proc: LocalChainProcess, backend_db_url: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    """A backend process with two competitions, two validators, evaluated submissions,
    a rejected one, a leader and weights."""
    netuid = next(_NETUIDS)
    backend = BackendProcess(
        database_url=backend_db_url, chain_url=chain_proc.url, netuid=netuid, data_dir=tmp_path
    )
    chain = LocalChain(chain_proc.url, netuid, timeout=10)
    s = Stack(
        backend=backend,
        chain=chain,
        registry=LocalRegistry(backend.registry_dir),
        media=LocalMediaStore(backend.media_dir),
    )
    try:
        backend.start()
        try:
            await seed(s)
        except BaseException as exc:
            subs = await s.get("/api/v1/submissions")
            jobs = await s.get("/api/v1/jobs")
            raise AssertionError(
                f"seeding failed: {exc!r}\nsubmissions: {subs}\njobs: {jobs}\n"
                f"backend log:\n{backend.log()}"
            ) from exc
        yield s
    finally:
        await s.close()
        backend.stop()
