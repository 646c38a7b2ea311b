"""`kinitro backend run` as a real process: starts, migrates, serves, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import free_port


def test_backend_run_serves_health_metrics_and_openapi(
    empty_db_url: str,
    chain_proc,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KINITRO_BACKEND_DATABASE_URL": empty_db_url,  # migrated on start
        "KINITRO_BACKEND_CHAIN_URL": chain_proc.url,
        "KINITRO_BACKEND_REGISTRY_DIR": str(tmp_path / "registry"),
    }
    log = (tmp_path / "backend.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kinitro",
            "backend",
            "run",
            "--port",
            str(port),
            "--media",
            str(tmp_path / "media"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "backend.log").read_text()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "backend did not become healthy"
            time.sleep(0.2)
        assert httpx.get(f"{base}/metrics").text.count("kinitro_backend_") > 5
        paths = httpx.get(f"{base}/openapi.json").json()["paths"]
        assert "/api/v1/competitions/{competition_id}/leaderboard" in paths
        assert httpx.get(f"{base}/api/v1/competitions").json() == []
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after a graceful shutdown
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 15
        log.flush()
        assert "Traceback" not in (tmp_path / "backend.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_backend_run_refuses_placeholder_secret_in_production() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kinitro", "backend", "run", "--environment", "production"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "seed_secret" in out.stderr and "Traceback" not in out.stderr
