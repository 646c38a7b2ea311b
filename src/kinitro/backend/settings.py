"""Settings of ``kinitro backend run`` (env prefix ``KINITRO_BACKEND_``, TOML ``[backend]``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from kinitro.core.settings import PLACEHOLDER_SECRETS, KinitroSettings


class Settings(KinitroSettings):
    model_config = SettingsConfigDict(env_prefix="KINITRO_BACKEND_", extra="ignore")
    toml_section: ClassVar[str | None] = "backend"
    secret_fields: ClassVar[tuple[str, ...]] = ("seed_secret",)

    # --- serving
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    database_url: str = "postgresql://postgres@127.0.0.1:5432/kinitro_backend"
    db_pool_size: int = Field(default=10, ge=1)
    migrate_on_start: bool = True
    replica_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    log_level: str = "INFO"

    # --- chain
    chain: Literal["local", "bittensor"] = "local"
    chain_url: str = "http://127.0.0.1:9945"
    netuid: int = 1
    bittensor_network: str = "finney"
    chain_scan_interval_s: float = 2.0
    metagraph_ttl_s: float = 10.0

    # --- artifacts and media
    registry: Literal["local", "hf"] = "local"
    registry_dir: Path = Path(".kinitro/devnet/registry")
    hf_token: SecretStr | None = None
    artifact_max_bytes: int = 512 * 1024 * 1024
    # tar artifacts are always inspected; this also refuses artifacts that are not tars
    require_bundle_archive: bool = False
    media_dir: Path | None = None
    media_base_url: str = "/media"
    """Prefix of episode media links (action logs, frames) in the API and dashboard:
    ``/media`` when this backend serves ``media_dir`` itself, else the public URL of the
    bucket the validators' evaluators upload to (an R2 custom domain, a CDN)."""

    # --- validator WebSocket
    min_validator_stake: float = 1000.0
    auth_timeout_s: float = 10.0
    heartbeat_interval_s: float = 10.0
    heartbeat_timeout_s: float = 35.0
    max_frame_bytes: int = 4 * 1024 * 1024
    max_bad_frames: int = 20
    ingest_concurrency: int = 8
    accepted_simulators: dict[str, list[str]] | None = None
    """Simulator versions a validator's evaluator may run, per package (mujoco,
    metaworld, gymnasium), preferred first; unset packages accept exactly this backend's
    own installed version. Results of different versions are never combined in one score.
    Env: JSON, e.g. ``KINITRO_BACKEND_ACCEPTED_SIMULATORS='{"mujoco": ["3.3.0"]}'``."""

    # --- scheduler
    replication: int = Field(default=3, ge=1)
    """Validators each job is assigned to (competitions may set their own)."""
    min_validators: int = Field(default=3, ge=1)
    """Quorum: results of this many validators a job needs before it counts for ranking
    and weights (competitions may set their own). Never above ``replication``."""
    job_deadline_s: int = 3600
    lease_s: float = 900.0
    max_attempts: int = 3
    scheduler_interval_s: float = 2.0
    round_duration_s: int = 86_400
    seed_secret: SecretStr = SecretStr("devnet")

    # --- cross-checks and standing
    result_grace_s: float = Field(default=300.0, gt=0)
    """How long a result that came before all its episodes is held (retryable nack)
    before it is refused as missing episodes."""
    strike_threshold: int = Field(default=3, ge=1)
    """Strikes (refused reports, failed audits) that suspend a validator."""
    suspension_rounds: float = Field(default=2.0, gt=0)
    """Length of a suspension, in round lengths (``round_duration_s``)."""

    # --- scoring and weights
    scoring_interval_s: float = 15.0
    disagreement_band: float = 0.2
    owner_uid: int = 0
    owner_share: float = 0.0

    # --- admin
    admin_api_key: SecretStr | None = None

    @model_validator(mode="after")
    def _quorum_reachable(self) -> Settings:
        if self.min_validators > self.replication:
            raise ValueError(
                f"min_validators ({self.min_validators}) must not exceed replication "
                f"({self.replication}): a job could never reach its quorum"
            )
        return self

    @model_validator(mode="after")
    def _real_admin_key(self) -> Settings:
        key = self.admin_api_key.get_secret_value() if self.admin_api_key else None
        weak = key is not None and (key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < 16)
        if self.environment != "devnet" and weak:
            raise ValueError(
                "admin_api_key must be a real secret of at least 16 characters when "
                f"environment={self.environment!r} (or leave it unset)"
            )
        return self

    # --- realtime
    realtime_queue_size: int = 256
    stats_interval_s: float = 10.0
