"""Chain settings shared by every role that talks to a chain, and the adapter factory.

Roles embed these fields (or build a :class:`ChainSettings`) and call :func:`open_chain`;
``backend = "local"`` (default) talks to the LocalChain service at ``local_url``,
``backend = "bittensor"`` uses the bittensor SDK on ``network``.

Environment: ``KINITRO_CHAIN_BACKEND``, ``KINITRO_CHAIN_LOCAL_URL``, ``KINITRO_CHAIN_NETWORK``,
``KINITRO_CHAIN_NETUID``, ``KINITRO_CHAIN_WALLET_PATH``, ``KINITRO_CHAIN_WALLET_NAME``,
``KINITRO_CHAIN_HOTKEY``, ``KINITRO_CHAIN_COLDKEY_PASSWORD``, ``KINITRO_CHAIN_TIMEOUT_S``;
TOML section ``[chain]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from kinitro.chain.local.client import LocalChain
from kinitro.chain.port import ChainClient
from kinitro.chain.wallets import DEFAULT_WALLET_PATH
from kinitro.core.settings import KinitroSettings


class ChainSettings(KinitroSettings):
    model_config = SettingsConfigDict(env_prefix="KINITRO_CHAIN_", extra="ignore")
    toml_section = "chain"

    backend: Literal["local", "bittensor"] = "local"
    local_url: str = "http://127.0.0.1:9945"
    network: str = "finney"
    netuid: int = 1
    wallet_path: Path = DEFAULT_WALLET_PATH
    wallet_name: str = "default"
    hotkey: str = "default"
    coldkey_password: SecretStr | None = None  # for encrypted coldkeys; never logged
    timeout_s: float = 10.0


def open_chain(settings: ChainSettings) -> ChainClient:
    """The configured adapter (caller closes it with ``await chain.close()``)."""
    if settings.backend == "bittensor":
        from kinitro.chain.bittensor_chain import BittensorChain  # noqa: PLC0415 - bittensor takes seconds to import: only the production chain loads it

        return BittensorChain(settings.network, settings.netuid)

    return LocalChain(settings.local_url, settings.netuid, timeout=settings.timeout_s)
