"""Settings of ``kinitro validator`` (env ``KINITRO_VALIDATOR_*`` or ``[validator]`` in TOML).

The wallet and the chain adapter come from :class:`kinitro.chain.settings.ChainSettings`
(``KINITRO_CHAIN_*`` / ``[chain]``): wallet path/name/hotkey, local chain URL, netuid.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kinitro.core.settings import KinitroSettings


class Settings(KinitroSettings):
    model_config = SettingsConfigDict(env_prefix="KINITRO_VALIDATOR_", extra="ignore")
    toml_section = "validator"

    backend_url: str = "ws://127.0.0.1:8000/ws/validator"
    """The backend's validator WebSocket."""
    database_url: str | None = None
    """Validator PostgreSQL (shared with the evaluator). Required for ``run``/``status``."""
    lite: bool = False
    """Only follow and set weights; announce ``lite`` so the backend sends no jobs."""

    # connection
    connect_timeout_s: float = Field(10.0, gt=0)
    auth_timeout_s: float = Field(10.0, gt=0)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    """Reconnect delay: exponential from min to max, full jitter."""
    ping_interval_s: float = Field(20.0, gt=0)
    """WebSocket ping (detects half-open connections); 0 disables."""
    heartbeat_interval_s: float | None = Field(None, gt=0)
    """Override the backend's ``heartbeat_interval_s`` from ``auth_ok``."""
    max_frame_bytes: int = Field(16 * 1024 * 1024, gt=0)

    # outbox
    outbox_window: int = Field(64, ge=1)
    """At most this many messages sent and not yet acked (backpressure)."""
    outbox_poll_s: float = Field(1.0, gt=0)
    """Fallback poll for new outbox rows; appends also wake the sender by NOTIFY."""
    ack_timeout_s: float = Field(60.0, gt=0)
    """Reconnect (and resend) when a sent message stays unacked this long."""
    nack_retry_s: float = Field(2.0, ge=0)
    """Delay before resending a message the backend nacked with a retryable code."""

    # weights
    weights_rate_limit_blocks: int | None = Field(None, ge=0)
    """Never set weights more often than this; the chain's own limit always applies."""
    weights_interval_blocks: int | None = Field(None, ge=1)
    """Set unchanged weights again after this many blocks (None: the subnet's tempo)."""
    weights_version_key: int = Field(0, ge=0)
    """``version_key`` sent with weights: at least the subnet's ``WeightsVersionKey``."""
    weights_max_attempts: int = Field(5, ge=1)
    weights_retry_s: float = Field(5.0, ge=0)
    block_time_s: float = Field(12.0, gt=0)
    """Expected block interval, to turn "retry in N blocks" into a wait."""

    # Prometheus metrics (docs/ops/metrics.md)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    """Serve metrics on this port (None: off; 0: any free port, logged)."""
    metrics_host: str = "127.0.0.1"
    metrics_path: str = "/metrics"
    metrics_interval_s: float = Field(5.0, gt=0)
    """How often the metrics are read from the database."""
