"""Shared set-up for the backend benchmarks: PostgreSQL, LocalChain and a backend process.

PostgreSQL comes from ``--database-url`` / ``KINITRO_BENCH_DATABASE_URL`` (an admin URL;
a throw-away database is created and dropped) or, when neither is given, from a private
cluster started from the machine's binaries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from kinitro.backend.db.models import MIGRATION_TREE
from kinitro.chain.local.process import LocalChainProcess, free_port
from kinitro.core import migrations
from kinitro.core.db import dsn
from kinitro.core.pgcluster import PostgresCluster

ADMIN_KEY = "bench-admin-key-0123456789"


@dataclass
class BenchNet:
    backend_url: str
    ws_url: str
    db_url: str
    chain_url: str
    netuid: int
    registry_dir: Path
    work: Path
    backend_pid: int


def _admin_sql(admin_url: str, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn(admin_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def postgres(admin_url: str | None, work: Path) -> Iterator[str]:
    """A fresh, migrated backend database URL."""

    cluster = None
    if not admin_url:
        cluster = PostgresCluster(work / "pg", fsync=False)
        admin_url = cluster.ensure()
    name = f"kinitro_bench_{uuid.uuid4().hex[:8]}"
    _admin_sql(admin_url, f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrations.upgrade(MIGRATION_TREE, url)
        yield url
    finally:
        _admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if cluster is not None:
            cluster.destroy()


@contextlib.contextmanager
def backend_net(database_url: str | None, **env_overrides: str) -> Iterator[BenchNet]:
    with tempfile.TemporaryDirectory(prefix="kinitro-bench-") as tmp:
        work = Path(tmp)
        admin = database_url or os.environ.get("KINITRO_BENCH_DATABASE_URL")
        with (
            postgres(admin, work) as db_url,
            LocalChainProcess(
                work / "chain",
                block_interval=0.2,
                tempo=20,  # 2-4 s epochs: commitment space is never the bottleneck
                weights_rate_limit=1,
                min_validator_stake=100.0,
            ) as chain,
        ):
            port = free_port()
            env = {
                **os.environ,
                "KINITRO_BACKEND_DATABASE_URL": db_url,
                "KINITRO_BACKEND_CHAIN_URL": chain.url,
                "KINITRO_BACKEND_NETUID": "1",
                "KINITRO_BACKEND_REGISTRY_DIR": str(work / "registry"),
                "KINITRO_BACKEND_ADMIN_API_KEY": ADMIN_KEY,
                "KINITRO_BACKEND_MIGRATE_ON_START": "false",
                "KINITRO_BACKEND_LOG_LEVEL": "WARNING",
                "KINITRO_BACKEND_CHAIN_SCAN_INTERVAL_S": "0.5",
                "KINITRO_BACKEND_SCHEDULER_INTERVAL_S": "0.5",
                "KINITRO_BACKEND_REPLICATION": "1",
                "KINITRO_BACKEND_MIN_VALIDATORS": "1",
                **env_overrides,
            }
            log = (work / "backend.log").open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "kinitro", "backend", "run", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            print(f"backend pid {proc.pid} (log: {work / 'backend.log'})", file=sys.stderr)
            try:
                url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 90
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError((work / "backend.log").read_text()[-3000:])
                    with contextlib.suppress(httpx.HTTPError):
                        if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError("backend did not start")
                    time.sleep(0.2)
                yield BenchNet(
                    backend_url=url,
                    ws_url=f"ws://127.0.0.1:{port}",
                    db_url=db_url,
                    chain_url=chain.url,
                    netuid=1,
                    registry_dir=work / "registry",
                    work=work,
                    backend_pid=proc.pid,
                )
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                log.close()


def add_compare_args(parser: Any) -> None:
    """``--compare-src`` / ``--repeat``: the side-by-side options of the backend benches."""
    parser.add_argument("--compare-src", type=Path, default=None, help="another checkout's src")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each variant")


def side_by_side(
    args: Any, measure: Callable[[Path | None], dict[str, Any]], title: str, key: str
) -> dict[str, Any]:
    """Run ``measure`` for this checkout ("new") and, with ``--compare-src``, another
    checkout's backend ("old"), alternating ``--repeat`` times; print one table with
    every run. Returns the JSON summary: each variant's median run by ``key`` and every
    run's ``key``."""

    variants: list[tuple[str, Path | None]] = [("new", None)]
    if args.compare_src is not None:
        variants.append(("old", args.compare_src.resolve()))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    for _ in range(args.repeat):
        for name, src in variants:
            runs[name].append(measure(src))
    table = Table(title=title)
    table.add_column("metric")
    for name, results in runs.items():
        for i in range(len(results)):
            table.add_column(f"{name} #{i + 1}" if len(results) > 1 else name, justify="right")
    for metric in runs["new"][0]:
        table.add_row(metric, *(str(r[metric]) for results in runs.values() for r in results))
    Console(stderr=True).print(table)
    out: dict[str, Any] = {}
    for name, results in runs.items():
        ordered = sorted(results, key=lambda r: r[key])
        out[name] = ordered[(len(ordered) - 1) // 2]
        out[f"{name}_{key}_runs"] = [r[key] for r in results]
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
