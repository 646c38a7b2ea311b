"""`kinitro watch` against a real backend process, and `kinitro devnet status`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bittensor_wallet import Keypair

from kinitro.chain.local.client import LocalChain
from kinitro.chain.local.process import LocalChainProcess, free_port
from kinitro.core.processes import ProcessExited, stop_process, wait_http_ok

ADMIN_KEY = "kin_test_admin_key_for_watch_tests"


@pytest.fixture
def chain_url(tmp_path: Path) -> Iterator[str]:
    with LocalChainProcess(tmp_path / "chain", block_interval=0.2) as chain:
        yield chain.url


@pytest.fixture
def backend_url(tmp_path: Path, backend_db_url: str, chain_url: str) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "KINITRO_BACKEND_PORT": str(port),
        "KINITRO_BACKEND_DATABASE_URL": backend_db_url,
        "KINITRO_BACKEND_CHAIN_URL": chain_url,
        "KINITRO_BACKEND_CHAIN_SCAN_INTERVAL_S": "0.5",
        "KINITRO_BACKEND_REGISTRY_DIR": str(tmp_path / "registry"),
        "KINITRO_BACKEND_ADMIN_API_KEY": ADMIN_KEY,
        "KINITRO_BACKEND_STATS_INTERVAL_S": "0.5",
    }
    log = (tmp_path / "backend.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kinitro", "backend", "run"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            assert wait_http_ok(f"{url}/health", 60, alive=proc), "backend did not start"
        except ProcessExited:
            pytest.fail((tmp_path / "backend.log").read_text()[-3000:])
        yield url
    finally:
        stop_process(proc, timeout=20)
        log.close()


def _kinitro(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinitro", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_watch_prints_the_snapshot(backend_url: str) -> None:
    result = _kinitro("watch", "--url", backend_url, "--json", "--duration", "3")
    assert result.returncode == 0, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert frames[0]["type"] == "snapshot"
    assert "stats" in frames[0]["data"]


def test_watch_screen_starts_from_the_snapshot_at_80_columns(backend_url: str) -> None:
    env = {**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "dumb"}
    result = subprocess.run(
        [sys.executable, "-m", "kinitro", "watch", "--url", backend_url, "--duration", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("kinitro watch · connected to ws://"), result.stdout
    # the snapshot's counters, in words (a fresh backend: nothing yet)
    assert "submissions 0" in result.stdout and "jobs 0" in result.stdout
    assert "Jobs: none live" in result.stdout
    assert "{" not in result.stdout
    assert max(len(line) for line in lines) <= 80
    assert len(lines) <= 24


def test_watch_sees_a_rejected_commitment_live(backend_url: str, chain_url: str) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kinitro",
            "watch",
            "--url",
            backend_url,
            "--json",
            "--event",
            "submission_rejected",
            "--max-events",
            "1",
            "--duration",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["type"] == "snapshot"
        hotkey = asyncio.run(_commit_garbage(chain_url))
        event = json.loads(proc.stdout.readline())
        assert event["event_type"] == "submission_rejected"
        assert event["miner_hotkey"] == hotkey
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait(10)


async def _commit_garbage(chain_url: str) -> str:
    coldkey = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
    hotkey = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
    async with LocalChain(chain_url, 1) as chain:
        await chain.register(coldkey, hotkey.ss58_address)
        await chain.commit(hotkey, "this is not a kinitro commitment")
    return str(hotkey.ss58_address)


def test_watch_rejects_unknown_event_type() -> None:
    result = _kinitro("watch", "--url", "http://127.0.0.1:9", "--event", "nope")
    assert result.returncode == 2
    assert "unknown event type" in result.stderr


def test_watch_gives_up_after_duration_when_backend_is_down() -> None:
    result = _kinitro("watch", "--url", "http://127.0.0.1:9", "--json", "--duration", "2")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


def test_devnet_status_without_a_devnet(tmp_path: Path) -> None:
    result = _kinitro("devnet", "status", "--data-dir", str(tmp_path / "none"), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["exists"] is False
    human = _kinitro("devnet", "status", "--data-dir", str(tmp_path / "none"))
    assert "kinitro devnet up" in human.stdout
