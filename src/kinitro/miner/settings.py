"""Miner CLI settings (env prefix ``KINITRO_MINER_``, TOML section ``[miner]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from kinitro.core.settings import KinitroSettings


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
