"""Where the devnet keeps things, and the state that makes a second run resume the first.

```
<data_dir>/
  devnet.json        ports, generated secrets, wallet names (this module)
  postgres/          private PostgreSQL cluster (or a LOCATION file pointing to it)
  chain/             LocalChain state
  wallets/           sr25519 wallets (bittensor layout)
  registry/          local artifact registry
  media/             local media store
  miners/<name>/     example miner bundles
  logs/<process>.log one log per process
```
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kinitro.core.devnet_info import STATE_FILE
from kinitro.core.pgcluster import free_port

__all__ = ["COMPETITION_ID", "MINERS", "STATE_FILE", "VALIDATORS", "DevnetState", "Layout"]
VALIDATORS = ("validator-1", "validator-2")
MINERS = ("miner-scripted", "miner-random", "miner-copycat")
COMPETITION_ID = "reach"


@dataclass
class DevnetState:
    """Persistent choices of one devnet data directory."""

    chain_port: int = 0
    backend_port: int = 0
    admin_api_key: str = ""
    seed_secret: str = ""
    netuid: int = 1
    committed: dict[str, int] = field(default_factory=dict)  # miner → commitment block
    metrics_ports: dict[str, int] = field(default_factory=dict)  # process → Prometheus port

    @classmethod
    def load(cls, data_dir: Path) -> DevnetState:
        path = data_dir / STATE_FILE
        if path.exists():
            raw = json.loads(path.read_text())
            known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
            state = cls(**known)
        else:
            state = cls()
        if not state.chain_port:
            state.chain_port = free_port()
        if not state.backend_port:
            state.backend_port = free_port()
        if not state.admin_api_key:
            state.admin_api_key = "kin_devnet_" + secrets.token_urlsafe(24)
        if not state.seed_secret:
            state.seed_secret = secrets.token_hex(32)
        return state

    def metrics_port(self, process: str) -> int:
        """The Prometheus port of a validator or evaluator process (chosen once, kept)."""
        if process not in self.metrics_ports:
            self.metrics_ports[process] = free_port()
        return self.metrics_ports[process]

    def save(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)


@dataclass(frozen=True)
class Layout:
    data_dir: Path

    @property
    def postgres(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def chain(self) -> Path:
        return self.data_dir / "chain"

    @property
    def wallets(self) -> Path:
        return self.data_dir / "wallets"

    @property
    def registry(self) -> Path:
        return self.data_dir / "registry"

    @property
    def media(self) -> Path:
        return self.data_dir / "media"

    @property
    def miners(self) -> Path:
        return self.data_dir / "miners"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def ensure(self) -> None:
        for path in (
            self.data_dir,
            self.chain,
            self.wallets,
            self.registry,
            self.media,
            self.miners,
            self.logs,
        ):
            path.mkdir(parents=True, exist_ok=True)
