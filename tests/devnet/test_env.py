"""`kinitro devnet env` and the miner commands find a devnet by its state file (the ports it
picked), the way `kinitro watch` does; explicit settings still win."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from kinitro.chain.wallets import create_wallet


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KINITRO_")}
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**base, "COLUMNS": "200", "NO_COLOR": "1", **env},
        check=False,
    )


def _devnet(root: Path) -> tuple[Path, int, int]:
    data = root / ".kinitro" / "devnet"
    data.mkdir(parents=True)
    chain, backend = _closed_port(), _closed_port()
    (data / "devnet.json").write_text(
        json.dumps({"chain_port": chain, "backend_port": backend, "netuid": 1})
    )
    return data, chain, backend


def test_env_prints_exports_that_bash_can_eval(tmp_path: Path) -> None:
    data, chain, backend = _devnet(tmp_path)
    kinitro = f"{sys.executable} -m kinitro"
    script = (
        f'eval "$({kinitro} devnet env)"; '
        'echo "$KINITRO_MINER_CHAIN_URL|$KINITRO_CHAIN_LOCAL_URL|$KINITRO_MINER_REGISTRY_DIR|'
        '$KINITRO_MINER_WALLET_PATH|$KINITRO_MINER_BACKEND_URL|$KINITRO_BACKEND_URL"'
    )
    result = _run(["bash", "-euo", "pipefail", "-c", script], tmp_path)
    assert result.returncode == 0, result.stderr
    chain_url, backend_url = f"http://127.0.0.1:{chain}", f"http://127.0.0.1:{backend}"
    assert result.stdout.strip().split("|") == [
        chain_url,
        chain_url,
        str(data / "registry"),
        str(data / "wallets"),
        backend_url,
        backend_url,
    ]


def test_env_without_a_devnet(tmp_path: Path) -> None:
    result = _run([sys.executable, "-m", "kinitro", "devnet", "env"], tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        f"error: no devnet in {tmp_path.resolve() / '.kinitro' / 'devnet'}: start one with "
        "`kinitro devnet up` (or give --data-dir / KINITRO_DEVNET_DIR)"
    )


def test_miner_commands_use_the_devnet_unless_told_otherwise(tmp_path: Path) -> None:
    _, chain, _ = _devnet(tmp_path)
    create_wallet("alice", "default", tmp_path / "wallets")
    status = [sys.executable, "-m", "kinitro", "miner", "status", "--wallet", "alice"]
    status += ["--wallet-path", str(tmp_path / "wallets")]
    found = _run(status, tmp_path)
    assert found.returncode == 2
    assert f"LocalChain at http://127.0.0.1:{chain} is unreachable" in found.stderr
    told = _run(status, tmp_path, KINITRO_MINER_CHAIN_URL="http://127.0.0.1:9")
    assert "LocalChain at http://127.0.0.1:9 is unreachable" in told.stderr
