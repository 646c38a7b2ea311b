"""``kinitro devnet env``: the shell exports that point the other tools at a devnet.

The devnet picks its ports at random on first start; the miner guide's commands read
``KINITRO_CHAIN_*`` / ``KINITRO_MINER_*`` settings, so ``eval "$(kinitro devnet env)"``
makes the guide work against a devnet as written (``tests/docs`` runs it so).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from kinitro.core.devnet_info import devnet_dir, find_devnet


def devnet_exports(data_dir: Path | None = None) -> str:
    """``export NAME=value`` lines for the devnet in ``data_dir``; ``LookupError`` if none."""
    info = find_devnet(data_dir)
    if info is None:
        raise LookupError(
            f"no devnet in {devnet_dir(data_dir)}: start one with `kinitro devnet up` "
            "(or give --data-dir / KINITRO_DEVNET_DIR)"
        )
    values = {
        "KINITRO_DEVNET_DIR": str(info.data_dir),
        "KINITRO_CHAIN_BACKEND": "local",
        "KINITRO_CHAIN_LOCAL_URL": info.chain_url,
        "KINITRO_CHAIN_NETUID": str(info.netuid),
        "KINITRO_CHAIN_WALLET_PATH": str(info.wallets_dir),
        "KINITRO_MINER_CHAIN_BACKEND": "local",
        "KINITRO_MINER_CHAIN_URL": info.chain_url,
        "KINITRO_MINER_NETUID": str(info.netuid),
        "KINITRO_MINER_WALLET_PATH": str(info.wallets_dir),
        "KINITRO_MINER_REGISTRY": "local",
        "KINITRO_MINER_REGISTRY_DIR": str(info.registry_dir),
        "KINITRO_MINER_BACKEND_URL": info.backend_url,
        "KINITRO_BACKEND_URL": info.backend_url,
    }
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())
