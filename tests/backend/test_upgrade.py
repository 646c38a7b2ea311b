"""The upgrade procedure of docs/ops/upgrades.md, on databases with work in flight.

Backend: a populated database (a result from before the upgrade, which carries no
runtime, and one from after) is backed up with ``pg_dump``, taken back to the previous
release's schema and forward again with ``kinitro db upgrade`` without losing a row, and
restored with ``pg_restore`` into a new database that a backend serves as before.
Validator: a job still queued and a result still in the outbox survive the same
backup and restore, so a node restored from its dump delivers them after the upgrade.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from kinitro.core.pgcluster import find_bin_dir
from kinitro.core.runtime import local_runtime
from kinitro.jobqueue import JobQueue
from kinitro.protocol.validator_ws import Ack
from validator.factories import make_episode, make_job

from . import conftest
from .conftest import Net, create_competition, login, serve
from .playing import play
from .test_flow import commit_artifact, get

PREVIOUS_RELEASE = "0002"  # the backend schema before runtime versions


def _run(*argv: str | Path) -> str:
    out = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, f"{argv}: {out.stdout}\n{out.stderr}"
    return out.stdout


def _kinitro(*argv: str) -> str:
    return _run(sys.executable, "-m", "kinitro", *argv)


def _dump(url: str, path: Path) -> None:
    _run(find_bin_dir() / "pg_dump", "--format=custom", "--no-owner", f"--file={path}", url)


def _restore(path: Path, url: str) -> None:
    _run(find_bin_dir() / "pg_restore", "--no-owner", "--exit-on-error", f"--dbname={url}", path)


def _new_database(make_empty_db: Any) -> str:
    return str(make_empty_db())


async def _populate(backend: Any, net: Net, registry: Any) -> tuple[str, str]:
    """Two jobs with a result each: one from an evaluator of the previous protocol (no
    runtime, as an outbox delivers it after the upgrade), one with this runtime."""
    await create_competition(backend)
    client, ok = await login(backend, await net.validator())
    assert ok.type == "auth_ok"
    jobs = []
    for content in (b"before", b"after"):
        await commit_artifact(net, registry, content=content, repo=f"m/{content.decode()}")
        job = await client.recv_type("eval_job", within=15)
        await client.send(Ack.of(job))
        jobs.append(job)
    assert (await play(client, jobs[0], 1)).ok
    assert (await play(client, jobs[1], 1, runtime=local_runtime())).ok
    await client.close()
    return jobs[0].job_id, jobs[1].job_id


async def _results(backend: Any) -> dict[str, str | None]:
    rows = (await get(backend, "/api/v1/results"))["items"]
    return {r["job_id"]: r["runtime_key"] for r in rows}


async def test_backend_backup_forward_migration_and_restore(
    backend_db_url: str, make_empty_db: Any, net: Net, registry: Any, tmp_path: Path
) -> None:
    settings = conftest.test_settings(backend_db_url, net, registry)
    async with serve(settings) as backend:
        legacy_job, current_job = await _populate(backend, net, registry)
        before = await _results(backend)
    assert before == {legacy_job: None, current_job: local_runtime().key}

    # 1. back up (the backend is stopped), 2. the previous release's schema, 3. forward
    dump = tmp_path / "backend.dump"
    await asyncio.to_thread(_dump, backend_db_url, dump)
    head = (await asyncio.to_thread(_kinitro, "db", "current", "--role", "backend",
                                    "--url", backend_db_url)).strip()  # fmt: skip
    await asyncio.to_thread(
        _kinitro, "db", "downgrade", "--role", "backend", "--url", backend_db_url,
        "--revision", PREVIOUS_RELEASE,
    )  # fmt: skip
    await asyncio.to_thread(_kinitro, "db", "upgrade", "--role", "backend", "--url", backend_db_url)
    async with serve(settings) as backend:
        # every result is still there; those stored before runtimes existed have none
        assert await _results(backend) == {legacy_job: None, current_job: None}

    # 4. roll back = restore the backup into a new database and point the backend at it
    restored = _new_database(make_empty_db)
    await asyncio.to_thread(_restore, dump, restored)
    current = await asyncio.to_thread(
        _kinitro, "db", "current", "--role", "backend", "--url", restored
    )
    assert current.strip() == head
    async with serve(conftest.test_settings(restored, net, registry)) as backend:
        assert await _results(backend) == before
        jobs = (await get(backend, "/api/v1/jobs"))["items"]
        assert {j["state"] for j in jobs} == {"completed"}


async def test_validator_backup_keeps_jobs_and_results_in_flight(
    validator_db_url: str, make_empty_db: Any, tmp_path: Path
) -> None:
    async with JobQueue.connect(validator_db_url, pool_size=1) as jq:
        waiting, evaluated = make_job(), make_job()
        await jq.enqueue_job(waiting)
        await jq.enqueue_job(evaluated)
        await jq.append_outbox(make_episode(evaluated.job_id, 0))  # not yet acked
        before = await jq.depths()
    dump = tmp_path / "validator.dump"
    await asyncio.to_thread(_dump, validator_db_url, dump)
    restored = _new_database(make_empty_db)
    await asyncio.to_thread(_restore, dump, restored)
    async with JobQueue.connect(restored, pool_size=1) as jq:
        await jq.check_schema()
        after = await jq.depths()
    assert (after.jobs_queued, after.outbox) == (before.jobs_queued, before.outbox) == (2, 1)
