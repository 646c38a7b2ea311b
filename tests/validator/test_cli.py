"""Subprocess smoke tests of `kinitro validator run` and `kinitro validator status`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kinitro.chain.wallets import create_wallet
from kinitro.jobqueue import JobQueue

from .factories import make_episode, make_job
from .peer import ScriptedBackend


def kinitro(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinitro", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def status_json(db: str) -> dict[str, Any]:
    out = kinitro("validator", "status", "--database-url", db, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_status_on_fresh_database(validator_db_url: str) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        as_json = pool.submit(status_json, validator_db_url)
        table = pool.submit(kinitro, "validator", "status", "--database-url", validator_db_url)
        data, table_out = as_json.result(), table.result()
    assert data["connection"]["state"] == "never connected"
    assert data["depths"]["jobs_queued"] == 0 and data["last_weights"] is None
    assert table_out.returncode == 0 and "jobs in flight" in table_out.stdout


def test_user_errors_are_clean(empty_db_url: str, tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        no_url = pool.submit(
            kinitro, "validator", "run", env={"KINITRO_VALIDATOR_DATABASE_URL": ""}
        )
        not_migrated = pool.submit(kinitro, "validator", "status", "--database-url", empty_db_url)
        no_wallet = pool.submit(
            kinitro, "validator", "run", "--database-url", empty_db_url,
            "--wallet", "nobody", "--wallet-path", str(tmp_path),
        )  # fmt: skip
    out = no_url.result()
    assert out.returncode == 2 and "no database URL" in out.stderr
    out = not_migrated.result()
    assert out.returncode == 2 and "not migrated" in out.stderr and "Traceback" not in out.stderr
    out = no_wallet.result()
    assert out.returncode == 2 and "nobody" in out.stderr and "Traceback" not in out.stderr


async def test_run_connects_stores_jobs_and_stops_on_sigterm(
    validator_db_url: str, tmp_path: Path
) -> None:
    create_wallet("val", "default", tmp_path)
    async with ScriptedBackend() as peer:
        job = make_job()
        peer.pending[job.id] = job
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kinitro", "validator", "run",
            "--backend-url", peer.url, "--database-url", validator_db_url,
            "--wallet", "val", "--wallet-path", str(tmp_path), "--no-weights",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await peer.wait_for(lambda: job.id not in peer.pending, timeout=30)
            data = await asyncio.to_thread(status_json, validator_db_url)
            assert data["connection"]["state"] == "connected"
            assert data["depths"]["jobs_queued"] == 1
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        data = await asyncio.to_thread(status_json, validator_db_url)
        assert data["connection"]["state"] == "stopped"


async def test_dead_letters_list_and_requeue(validator_db_url: str) -> None:
    async with JobQueue.connect(validator_db_url, pool_size=1) as jq:
        job = make_job()
        await jq.enqueue_job(job)
        episode = make_episode(job.job_id, 0)
        await jq.append_outbox(episode)
        await jq.reject_outbox(episode.id, error_code="conflict", detail="differs")
    out = await asyncio.to_thread(
        kinitro, "validator", "dead-letters", "--database-url", validator_db_url, "--json"
    )
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)["dead_letters"]
    assert row["message_id"] == episode.id and row["error_code"] == "conflict"
    out = await asyncio.to_thread(
        kinitro, "validator", "dead-letters", "--database-url", validator_db_url, "--requeue"
    )
    assert out.returncode == 0 and "requeued 1" in out.stdout
    async with JobQueue.connect(validator_db_url, pool_size=1) as jq:
        assert (await jq.depths()).outbox == 1
