"""Where a devnet on this machine listens and keeps its files, read from its state file.

``kinitro devnet up`` picks free ports once and records them in ``DATA_DIR/devnet.json``
(:mod:`kinitro.devnet.layout`). Tools of other roles — ``kinitro miner …``, ``kinitro
watch``, ``kinitro devnet env`` — find the devnet through this module (roles never import
each other), so a miner following the guide needs no port numbers. ``DATA_DIR`` is
``KINITRO_DEVNET_DIR``, else ``.kinitro/devnet`` under the working directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "devnet.json"
DEFAULT_DIR = Path(".kinitro/devnet")


@dataclass(frozen=True, slots=True)
class DevnetInfo:
    """The endpoints and directories of one devnet data directory."""

    data_dir: Path
    chain_port: int
    backend_port: int
    netuid: int

    @property
    def chain_url(self) -> str:
        return f"http://127.0.0.1:{self.chain_port}"

    @property
    def backend_url(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    @property
    def registry_dir(self) -> Path:
        return self.data_dir / "registry"

    @property
    def wallets_dir(self) -> Path:
        return self.data_dir / "wallets"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"


def devnet_dir(data_dir: Path | None = None) -> Path:
    """``data_dir``, else ``KINITRO_DEVNET_DIR``, else ``.kinitro/devnet`` (absolute)."""
    raw = data_dir or Path(os.environ.get("KINITRO_DEVNET_DIR") or DEFAULT_DIR)
    return raw.expanduser().resolve()


def find_devnet(data_dir: Path | None = None) -> DevnetInfo | None:
    """The devnet recorded in ``data_dir`` (see :func:`devnet_dir`), or None when there is
    none (no state file, or one without ports yet)."""
    root = devnet_dir(data_dir)
    try:
        raw = json.loads((root / STATE_FILE).read_text())
        chain_port, backend_port = int(raw["chain_port"]), int(raw["backend_port"])
        netuid = int(raw.get("netuid", 1))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not chain_port or not backend_port:
        return None
    return DevnetInfo(root, chain_port, backend_port, netuid)
