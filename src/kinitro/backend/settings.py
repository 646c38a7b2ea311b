"""Settings of ``kinitro backend run`` (env prefix ``KINITRO_BACKEND_``, TOML ``[backend]``).

A backend on a real chain is a production backend: ``chain = bittensor`` implies
``environment = production`` (and refuses an explicit ``devnet``), and production refuses
to start with the devnet's conveniences — a placeholder or short ``seed_secret``, no
``admin_api_key``, no ``round_wallet_name``; ``/metrics`` needs a token there unless
``metrics_public = true`` says otherwise. Every limit that protects the service from its
clients is a setting here (docs/backend.md, "Limits").
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from kinitro.chain.wallets import DEFAULT_WALLET_PATH
from kinitro.core.settings import PLACEHOLDER_SECRETS, KinitroSettings
from kinitro.protocol.coverage import DEFAULT_MIN_SCORED_SHARE
from kinitro.storage.media import MediaStore, open_media_store


class Settings(KinitroSettings):
    model_config = SettingsConfigDict(env_prefix="KINITRO_BACKEND_", extra="ignore")
    toml_section: ClassVar[str | None] = "backend"
    # seed_secret is checked with the other production rules (_production_safe), so an
    # operator sees every problem at once
    secret_fields: ClassVar[tuple[str, ...]] = ()

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
    hf_endpoint: str | None = None
    """A Hub-compatible endpoint (a mirror); None: huggingface.co."""
    artifact_max_bytes: int = 512 * 1024 * 1024
    artifact_deadline_s: float = Field(3600.0, ge=0)
    """How long a committed artifact may stay unreadable (a private repo not published
    yet, a registry down) before the submission is rejected ``artifact_unavailable``."""
    # tar artifacts are always inspected; this also refuses artifacts that are not tars
    require_bundle_archive: bool = False
    media_url: str | None = None
    """Where the validators' evaluators put episode media (action logs, frames): a local
    directory or ``file://…`` (the devnet) or ``s3://bucket[/prefix]`` (Cloudflare R2,
    MinIO, S3; read with the ``s3_*`` settings, read-only credentials suffice). This
    backend serves it at ``/media/<key>`` under the embargo (403 until the round's
    reveal) and its audits read the action logs from it. The embargo is that route: the
    bucket itself must not be publicly readable (docs/guides/production.md, "Media")."""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_ca_bundle: str | None = None
    """A private CA to trust for ``s3_endpoint_url`` (None: the system store)."""

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

    # --- submissions
    submission_limit: int = Field(default=4, ge=1)
    """Submissions a miner hotkey may have accepted per competition and window; more are
    rejected ``rate_limited`` (evaluation costs every validator; a flood would crowd out
    other miners)."""
    submission_window_s: float = Field(default=86_400.0, gt=0)

    # --- scheduler
    replication: int = Field(default=3, ge=1)
    """Validators each job is assigned to (competitions may set their own)."""
    min_validators: int = Field(default=3, ge=1)
    """Quorum: results of this many validators a job needs before it counts for ranking
    and weights (competitions may set their own). Never above ``replication``."""
    job_deadline_s: int = 3600
    lease_s: float = 900.0
    max_attempts: int = 3
    max_jobs_per_validator: int = Field(default=8, ge=1)
    """In-flight cap: unfinished assignments (assigned, acked, running) a validator holds
    at most; the scheduler gives it more as they finish."""
    min_scored_share: float = Field(default=DEFAULT_MIN_SCORED_SHARE, ge=0.0, le=1.0)
    """The coverage rule: a completed result with fewer scored episodes (of the job's
    planned ones) is an infrastructure failure — re-run, and never scored."""
    scheduler_interval_s: float = 2.0
    round_duration_s: int = Field(default=86_400, ge=1)
    """Length of a round (competitions may set their own ``round_seconds``)."""
    seed_secret: SecretStr = SecretStr("devnet")
    """Every round secret derives from it (``kinitro.protocol.rounds``): never share it."""
    round_wallet_name: str | None = None
    """Wallet whose hotkey writes each round's commitment on chain before the round's jobs
    are sent (a registered hotkey, e.g. the subnet owner's). Required in production; a
    devnet without one sends jobs of uncommitted rounds (which ``round verify`` fails)."""
    round_wallet_hotkey: str = "default"
    round_wallet_path: Path = DEFAULT_WALLET_PATH

    # --- cross-checks and standing
    result_grace_s: float = Field(default=300.0, gt=0)
    """How long a result that came before all its episodes is held (retryable nack)
    before it is refused as missing episodes."""
    strike_threshold: int = Field(default=3, ge=1)
    """Strikes (refused reports, failed audits) that suspend a validator."""
    suspension_rounds: float = Field(default=2.0, gt=0)
    """Length of a suspension, in round lengths (``round_duration_s``)."""

    # --- replay audits (after each round's reveal; kinitro.backend.audits)
    audit_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of each completed result's logged episodes re-simulated (at least one per
    result); 1.0 audits every episode."""
    audit_workers: int = Field(default=1, ge=0)
    """Audit worker processes beside the backend (simulator only); 0 turns audits off."""
    audit_interval_s: float = Field(default=10.0, gt=0)
    audit_timeout_s: float = Field(default=300.0, gt=0)
    """Longest one episode's replay may take before its worker is replaced."""
    agent_rerun_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """Chance that a passed replay audit of a deterministic bundle's episode is followed by
    an agent re-run audit (two other validators re-run the agent on its seed)."""
    agent_rerun_atol: float = Field(default=1e-4, ge=0.0)
    """Largest difference between two runs' actions that still counts as the same."""
    audit_max_attempts: int = Field(default=5, ge=1)
    """Tries of an audit that cannot run (media store down, worker failure) before it is
    skipped as inconclusive — never a strike."""

    # --- scoring and weights
    scoring_interval_s: float = 15.0
    disagreement_band: float = 0.2
    owner_uid: int = 0
    owner_share: float = 0.0
    leader_challengers: int = Field(default=3, ge=0)
    """Best eligible non-leaders re-evaluated with the leader in every round."""
    leader_window_rounds: int = Field(default=5, ge=1)
    """A submission's score, and the paired test, use its most recent complete rounds."""
    dethrone_confidence: float = Field(default=0.95, gt=0.5, lt=1)
    """Confidence of the one-sided paired test a challenger must pass to dethrone."""
    dethrone_min_shared: int = Field(default=50, ge=1)
    """Episodes a challenger must share with the leader before the test may dethrone."""
    copy_tolerance: float = Field(default=0.01, ge=0)
    """Mean absolute action difference under which two paired episodes act the same."""
    copy_min_episodes: int = Field(default=10, ge=1)
    """Fingerprinted episodes two submissions must share before one can be a copy."""
    copy_match_share: float = Field(default=0.9, gt=0, le=1)
    """Share of those that must act the same for the later commitment to be a copy."""

    # --- episode videos (kinitro.backend.renders; rendered by `kinitro evaluator render-worker`)
    render_queue_max: int = Field(default=20, ge=1)
    """Renders queued or running at most; an episode page's request beyond is refused."""
    render_lease_s: float = Field(default=120.0, gt=0)
    """A worker that does not report within this gives its render back to the queue."""
    render_failed_sample: int = Field(default=3, ge=0)
    """Failed episodes of a revealed round rendered automatically (besides the leader's)."""

    # --- admin and operations
    admin_api_key: SecretStr | None = None
    metrics_public: bool | None = None
    """``/metrics`` without a token: default true on the devnet, false in production."""
    metrics_token: SecretStr | None = None
    """Bearer token a Prometheus scraper presents (an API key also works)."""

    @model_validator(mode="after")
    def _quorum_reachable(self) -> Settings:
        if self.min_validators > self.replication:
            raise ValueError(
                f"min_validators ({self.min_validators}) must not exceed replication "
                f"({self.replication}): a job could never reach its quorum"
            )
        return self

    # --- realtime
    realtime_queue_size: int = Field(default=256, ge=1)
    """Events a realtime client may have waiting; beyond, it is closed as slow (1008)."""
    realtime_tick_s: float = Field(default=0.025, gt=0, le=1.0)
    """Events are coalesced into one frame per client per tick."""
    stats_interval_s: float = 10.0

    # --- limits (abuse resistance)
    max_body_bytes: int = Field(default=64 * 1024, ge=0)
    """Largest admin request body; public routes take none."""
    rest_rate_per_s: float = Field(default=20.0, gt=0)
    """Public REST requests per second per client address (token bucket)."""
    rest_burst: int = Field(default=60, ge=1)
    realtime_max_clients: int = Field(default=5000, ge=1)
    realtime_max_per_address: int = Field(default=32, ge=1)
    max_pending_auth: int = Field(default=32, ge=1)
    """Validator sockets that may be signing in at once."""
    metagraph_min_refresh_s: float = Field(default=2.0, ge=0)
    """Minimum time between two metagraph fetches, whoever asks (sign-ins included)."""

    @model_validator(mode="before")
    @classmethod
    def _no_public_media_links(cls, data: Any) -> Any:
        given = [
            name
            for name in REMOVED_MEDIA_SETTINGS
            if (isinstance(data, dict) and name in data)
            or f"KINITRO_BACKEND_{name.upper()}" in os.environ
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)} is no longer a setting: episode media are served only by "
                "this backend at /media under the sealed-round embargo (a public bucket URL "
                "would publish every round's action logs before its reveal); set media_url "
                "to the directory or s3://bucket/prefix the evaluators write to"
            )
        return data

    @model_validator(mode="before")
    @classmethod
    def _bittensor_is_production(cls, data: Any) -> Any:
        if not isinstance(data, dict) or str(data.get("chain", "")).lower() != "bittensor":
            return data
        environment = data.get("environment")
        if environment is None:
            return {**data, "environment": "production"}
        if str(environment) == "devnet":
            raise ValueError(
                "environment = devnet cannot be used with chain = bittensor (a real subnet "
                "is production): leave environment unset or set it to production"
            )
        return data

    @model_validator(mode="after")
    def _production_safe(self) -> Settings:
        if self.environment == "devnet":
            return self
        problems: list[str] = []
        seed = self.seed_secret.get_secret_value().strip()
        if seed.lower() in PLACEHOLDER_SECRETS or len(seed) < MIN_SEED_SECRET_CHARS:
            problems.append(
                f"seed_secret must be set to a real secret of at least {MIN_SEED_SECRET_CHARS} "
                "characters (e.g. `openssl rand -hex 32`)"
            )
        if not self.round_wallet_name:
            problems.append(
                "round_wallet_name must name the wallet whose hotkey commits each round on chain"
            )
        key = self.admin_api_key.get_secret_value().strip() if self.admin_api_key else ""
        if not key:
            problems.append("admin_api_key must be set (the bootstrap admin key)")
        elif key.lower() in PLACEHOLDER_SECRETS or len(key) < MIN_KEY_CHARS:
            problems.append(
                f"admin_api_key must be a real secret of at least {MIN_KEY_CHARS} characters"
            )
        token = self.metrics_token.get_secret_value().strip() if self.metrics_token else None
        if token is not None and (
            token.lower() in PLACEHOLDER_SECRETS or len(token) < MIN_KEY_CHARS
        ):
            problems.append(
                f"metrics_token must be a real secret of at least {MIN_KEY_CHARS} characters"
            )
        if problems:
            raise ValueError(f"unsafe for environment={self.environment!r}: " + "; ".join(problems))
        return self

    def media_store(self) -> MediaStore | None:
        """The media store ``media_url`` names (None: no media served)."""
        if self.media_url is None:
            return None
        if not self.media_url.startswith("s3://"):
            return open_media_store(self.media_url)
        secret = self.s3_secret_access_key
        return open_media_store(
            self.media_url,
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            access_key_id=self.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
            ca_bundle=self.s3_ca_bundle,
        )

    @property
    def metrics_open(self) -> bool:
        """Whether ``/metrics`` answers without a token."""
        return (
            self.metrics_public if self.metrics_public is not None else self.environment == "devnet"
        )


MIN_SEED_SECRET_CHARS = 32
REMOVED_MEDIA_SETTINGS = ("media_dir", "media_base_url")
MIN_KEY_CHARS = 16
