"""The devnet's three example miners, submitted the way a miner would: ``kinitro miner
init / upload / commit / publish`` as subprocesses, each with its own wallet.

- ``miner-scripted``: the template agent (a scripted reach expert);
- ``miner-random``: uniformly random actions, a low-scoring baseline;
- ``miner-copycat``: the scripted bundle with one comment changed (another sha256),
  committed a few blocks later by another hotkey; only its behaviour gives it away.

A miner already in ``DevnetState.committed`` is skipped, so a resumed devnet submits nothing
twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kinitro.chain.local.client import LocalChain
from kinitro.devnet.layout import COMPETITION_ID
from kinitro.devnet.network import Devnet, DevnetError

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


def submit_miners(devnet: Devnet) -> None:
    devnet.progress.step = "miners"
    miners = devnet.layout.miners
    scripted, rand, copycat = miners / "scripted", miners / "random", miners / "copycat"

    def init_random() -> None:
        if not (rand / "kinitro.toml").exists():
            run_kinitro(devnet, "miner", "init", str(rand), "--name", "random-agent")
            _make_random_agent(rand)

    def init_scripted() -> None:
        if not (scripted / "kinitro.toml").exists():
            run_kinitro(devnet, "miner", "init", str(scripted), "--name", "scripted-reach")
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
        list(pool.map(lambda p: _submit(devnet, p[0], p[1], commit=p[2]), plan))
    # The copy is committed a few blocks later, so the scripted miner's is earlier.
    asyncio.run(_wait_blocks(devnet.chain_url, devnet.state.netuid, 2))
    _submit(devnet, "miner-copycat", copycat)
    devnet.progress.note("3 miners committed (scripted, random, near-copy of scripted)")


def miner_env(devnet: Devnet, wallet: str) -> dict[str, str]:
    return {
        "KINITRO_MINER_CHAIN_BACKEND": "local",
        "KINITRO_MINER_CHAIN_URL": devnet.chain_url,
        "KINITRO_MINER_NETUID": str(devnet.state.netuid),
        "KINITRO_MINER_WALLET_PATH": str(devnet.layout.wallets),
        "KINITRO_MINER_WALLET_NAME": wallet,
        "KINITRO_MINER_HOTKEY": "default",
        "KINITRO_MINER_REGISTRY": "local",
        "KINITRO_MINER_REGISTRY_DIR": str(devnet.layout.registry),
        "KINITRO_MINER_BACKEND_URL": devnet.backend_http,
    }


def run_kinitro(devnet: Devnet, *args: str, env: dict[str, str] | None = None) -> str:
    """``kinitro ARGS`` in a subprocess; its output goes to ``logs/devnet-commands.log``."""
    full_env = {**os.environ, **(env or {}), "NO_COLOR": "1", "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "kinitro", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        check=False,
    )
    log = devnet.layout.logs / "devnet-commands.log"
    with log.open("a") as fh:
        fh.write(f"$ kinitro {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise DevnetError(
            f"`kinitro {' '.join(args)}` failed ({result.returncode}):\n"
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )
    return result.stdout


def _submit(devnet: Devnet, wallet: str, bundle: Path, *, commit: bool = True) -> None:
    if wallet in devnet.state.committed:
        return
    env = miner_env(devnet, wallet)
    upload_record = bundle / ".kinitro" / "upload.json"
    if not upload_record.exists():
        run_kinitro(devnet, "miner", "upload", str(bundle), "--repo", f"devnet/{wallet}", env=env)
    if not commit:
        return
    out = run_kinitro(
        devnet,
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
    run_kinitro(devnet, "miner", "publish", str(bundle), env=env)
    with devnet.state_lock:
        devnet.state.committed[wallet] = block
        devnet.state.save(devnet.layout.data_dir)


async def _wait_blocks(chain_url: str, netuid: int, n: int) -> None:
    async with LocalChain(chain_url, netuid) as chain:
        target = await chain.block() + n
        current = 0
        while current < target:
            await asyncio.sleep(0.3)
            current = await chain.block()


def _make_random_agent(bundle: Path) -> None:
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
