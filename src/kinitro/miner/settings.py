"""Miner CLI settings (env prefix ``KINITRO_MINER_``, TOML section ``[miner]``).

Next to a devnet (``.kinitro/devnet`` or ``KINITRO_DEVNET_DIR``, as ``kinitro watch``
finds it) the chain URL, netuid, registry directory and backend URL that were not given
by flag, environment or config file are the devnet's (:meth:`MinerSettings.near_devnet`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from kinitro.core.settings import KinitroSettings

if TYPE_CHECKING:
    from kinitro.core.devnet_info import DevnetInfo


class MinerSettings(KinitroSettings):
    model_config = SettingsConfigDict(env_prefix="KINITRO_MINER_", extra="ignore")
    toml_section = "miner"

    # chain
    chain_backend: Literal["local", "bittensor"] = "local"
    chain_url: str = "http://127.0.0.1:9945"
    network: str = "finney"
    netuid: int = 1
    wallet_path: Path = Path("~/.bittensor/wallets")
    wallet_name: str = "default"
    hotkey: str = "default"
    # artifact registry
    registry: Literal["local", "hf"] = "local"
    registry_dir: Path = Path(".kinitro/devnet/registry")
    hf_token: SecretStr | None = None  # falls back to HF_TOKEN / the huggingface-cli login
    hf_endpoint: str | None = None
    max_bundle_bytes: int = 512 * 1024 * 1024
    # backend (for `miner status`)
    backend_url: str = "http://127.0.0.1:8000"
    timeout_s: float = 30.0

    def near_devnet(self, devnet: DevnetInfo | None) -> MinerSettings:
        """These settings with ``devnet``'s endpoints for the ones not set explicitly
        (a LocalChain only: a Bittensor config never points at a devnet)."""
        if devnet is None or self.chain_backend != "local":
            return self
        found = {
            "chain_url": devnet.chain_url,
            "netuid": devnet.netuid,
            "registry_dir": devnet.registry_dir,
            "backend_url": devnet.backend_url,
        }
        update = {k: v for k, v in found.items() if k not in self.model_fields_set}
        return self.model_copy(update=update)
