"""Test harness: a real PostgreSQL server, migrated template databases, fresh DBs per test.

* ``pg_admin_url`` (session): ``KINITRO_TEST_DATABASE_URL`` when set (any PostgreSQL ≥ 14
  reachable with a superuser or a role allowed to create databases), otherwise a private
  throw-away cluster started from the machine's PostgreSQL binaries (see
  ``kinitro.core.pgcluster``).
* ``backend_db_url`` / ``validator_db_url`` (function): a new database cloned with
  ``CREATE DATABASE … TEMPLATE`` from a template migrated once per session.
* ``empty_db_url`` (function): a new empty database.
* ``s3_server`` (session): moto's S3 over HTTPS with a self-signed certificate, behind a
  gate that refuses what Cloudflare R2 refuses (``tests/s3_server.py``).
* ``installed_wheel`` (session): the wheel built from this tree (``scripts/build-dist``)
  installed with its ``constraints.txt`` in a fresh venv that shares nothing with the
  development ``.venv``, as an operator installs it. uv's resolver and cache do the install
  so a CI run pays seconds instead of a gigabyte of downloads; the operator's
  ``pip install -c constraints.txt kinitro-*.whl`` reads the same wheel metadata.

Every database a test gets is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from kinitro.backend.db.models import MIGRATION_TREE as BACKEND_TREE
from kinitro.core import migrations
from kinitro.core.db import dsn
from kinitro.core.pgcluster import PostgresCluster
from kinitro.evaluator.sandbox.agent_env import AgentEnvironment
from kinitro.evaluator.sandbox.base import SandboxUnavailable
from kinitro.jobqueue.models import MIGRATION_TREE as VALIDATOR_TREE

T = TypeVar("T")

_RUN_ID = uuid.uuid4().hex[:8]


def run_sync(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a private loop in a worker thread.

    Safe to call from sync fixtures whether or not an event loop is running here.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _admin_execute(admin_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn(admin_url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = os.environ.get("KINITRO_TEST_DATABASE_URL")
    if url:
        yield url
        return

    root = Path(tempfile.mkdtemp(prefix="kinitro-test-pg-"))
    root.chmod(0o755)
    cluster = PostgresCluster(root / "pgdata", fsync=False)
    try:
        yield cluster.ensure()
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _build_template(admin_url: str, role: str) -> str:
    name = f"kinitro_tpl_{role}_{_RUN_ID}"
    run_sync(
        lambda: _admin_execute(
            admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
        )
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        tree = BACKEND_TREE if role == "backend" else VALIDATOR_TREE
        pool.submit(migrations.upgrade, tree, _with_database(admin_url, name)).result()
    return name


@pytest.fixture(scope="session")
def _templates(pg_admin_url: str) -> Iterator[dict[str, str]]:
    built: dict[str, str] = {}
    yield built
    for name in built.values():
        run_sync(
            lambda name=name: _admin_execute(  # type: ignore[misc]
                pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            )
        )


def _fresh_database(admin_url: str, template: str | None) -> Iterator[str]:
    name = f"kinitro_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    run_sync(lambda: _admin_execute(admin_url, f'CREATE DATABASE "{name}"{clause}'))
    try:
        yield _with_database(admin_url, name)
    finally:
        run_sync(
            lambda: _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


def _template_for(role: str, admin_url: str, templates: dict[str, str]) -> str:
    if role not in templates:
        templates[role] = _build_template(admin_url, role)
    return templates[role]


@pytest.fixture
def backend_db_url(pg_admin_url: str, _templates: dict[str, str]) -> Iterator[str]:
    yield from _fresh_database(pg_admin_url, _template_for("backend", pg_admin_url, _templates))


@pytest.fixture
def validator_db_url(pg_admin_url: str, _templates: dict[str, str]) -> Iterator[str]:
    yield from _fresh_database(pg_admin_url, _template_for("validator", pg_admin_url, _templates))


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    yield from _fresh_database(pg_admin_url, None)


@pytest.fixture
def make_empty_db(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Factory for extra empty databases within one test (e.g. two validators)."""
    made: list[Iterator[str]] = []

    def make() -> str:
        gen = _fresh_database(pg_admin_url, None)
        made.append(gen)
        return next(gen)

    yield make
    for gen in made:
        for _ in gen:
            pass


REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class InstalledWheel:
    wheel: Path
    constraints: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def kinitro(self) -> Path:
        """The console script the wheel installs."""
        return self.venv / "bin" / "kinitro"


def _check_run(*argv: str | Path, cwd: Path) -> None:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, argv))} exited {result.returncode}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


@pytest.fixture(scope="session")
def installed_wheel() -> Iterator[InstalledWheel]:
    root = Path(tempfile.mkdtemp(prefix="kinitro-wheel-"))
    root.chmod(0o755)  # the sandbox binds the venv read-only for an unprivileged uid
    dist, venv = root / "dist", root / "venv"
    try:
        _check_run(REPO / "scripts" / "build-dist", dist, cwd=REPO)
        (wheel,) = dist.glob("kinitro-*.whl")
        _check_run(sys.executable, "-m", "venv", venv, cwd=root)
        uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
        (agent_wheel,) = dist.glob("kinitro_agent-*.whl")
        _check_run(
            uv, "pip", "install", "--quiet", "--python", venv / "bin" / "python",
            "-c", dist / "constraints.txt", wheel, agent_wheel, cwd=root,
        )  # fmt: skip
        # The agent environment the installed evaluator's sandbox binds (build-dist's recipe).
        agent_env = venv / "agent-envs" / "base"
        _check_run(sys.executable, "-m", "venv", "--without-pip", agent_env, cwd=root)
        _check_run(
            uv, "pip", "install", "--quiet", "--python", agent_env / "bin" / "python",
            "-c", dist / "constraints.txt", agent_wheel, cwd=root,
        )  # fmt: skip
        yield InstalledWheel(wheel=wheel, constraints=dist / "constraints.txt", venv=venv)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    from s3_server import start_s3_server  # noqa: PLC0415 - tests/ is on sys.path (rootdir conftest); moto loads only when a test needs S3

    root = Path(tempfile.mkdtemp(prefix="kinitro-s3-"))
    root.chmod(0o755)
    server = start_s3_server(root)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    """The sandbox runs the agent environment's *installed* copy of ``kinitro-agent``
    (``.venv/agent-envs/base``, a wheel, not the source tree): refuse to test a stale one."""

    source = Path(__file__).parent.parent / "packages" / "kinitro-agent" / "src" / "kinitro_agent"
    try:
        env = AgentEnvironment.find()
    except SandboxUnavailable as exc:
        pytest.exit(f"{exc}", returncode=2)
    (installed,) = env.root.glob("lib/python3*/site-packages/kinitro_agent")
    stale = [
        str(p.relative_to(source))
        for p in source.rglob("*.py")
        if not (installed / p.relative_to(source)).is_file()
        or (installed / p.relative_to(source)).read_bytes() != p.read_bytes()
    ]
    if stale:
        pytest.exit(
            f"the agent environment {env.root} is stale ({', '.join(stale[:5])}): "
            "run scripts/bootstrap",
            returncode=2,
        )


# Files to start first: `scripts/test` hands whole files to its pytest-xdist workers in
# collection order (`--dist loadfile --no-loadscope-reorder`). The devnet e2e file is the
# longest (two tests, 4-6 min on a loaded 2-core host): started last, it was the tail of
# the run. Only it: the other heavy files (a live devnet for the docs, the soak, the video
# render) start many processes each, and started together with it they slowed each other
# down (the devnet e2e took 360-386 s beside them, 247 s without; the run 12.7-12.9 min
# of pytest against 11.4 on this 2-core machine). Order only.
LONGEST_FIRST = ("tests/devnet/test_devnet_e2e.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    root = config.rootpath
    # a stable sort: the other files keep their order, and the tests inside a file theirs
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(rank)))
