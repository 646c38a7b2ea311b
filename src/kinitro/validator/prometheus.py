"""Prometheus metrics of a validator node, read from its database.

Everything an operator alerts on is already in the validator database, written by the
node as it works (connection row, queue, outbox, weights): the refresher reads
``status()`` every ``metrics_interval_s`` and sets the gauges, so the node's hot path
carries no metric code and ``kinitro validator status`` and the metrics always agree.
Each metric is documented in ``docs/ops/metrics.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge

if TYPE_CHECKING:
    from kinitro.jobqueue.ports import NodeStatus
    from kinitro.jobqueue.records import ValidatorStatus

log = logging.getLogger(__name__)

CONNECTION_STATES = ("connected", "disconnected", "stopped", "never connected")


class ValidatorMetrics:
    def __init__(self, stale_after_s: float) -> None:
        self.registry = CollectorRegistry()
        self.stale_after_s = stale_after_s
        r = self.registry
        self.up = Gauge(
            "kinitro_validator_connected",
            "1 while the node holds an authenticated session with the backend (heartbeats "
            "fresh), else 0",
            registry=r,
        )
        self.state = Gauge(
            "kinitro_validator_connection_state",
            "Connection state as the node last recorded it (1 for the current state)",
            ["state"],
            registry=r,
        )
        self.reconnects = Gauge(
            "kinitro_validator_reconnects", "Reconnects since the node started", registry=r
        )
        self.jobs_queued = Gauge(
            "kinitro_validator_jobs_queued", "Jobs waiting for an evaluator", registry=r
        )
        self.jobs_in_flight = Gauge(
            "kinitro_validator_jobs_in_flight", "Jobs picked by an evaluator", registry=r
        )
        self.jobs = Gauge(
            "kinitro_validator_jobs", "Jobs in the node's database by state", ["state"], registry=r
        )
        self.outbox = Gauge(
            "kinitro_validator_outbox_messages",
            "Results and telemetry waiting for the backend's ack",
            registry=r,
        )
        self.outbox_lag = Gauge(
            "kinitro_validator_outbox_lag_seconds",
            "Age of the oldest message waiting for the backend's ack (0 when empty)",
            registry=r,
        )
        self.dead = Gauge(
            "kinitro_validator_outbox_dead_letters",
            "Messages the backend refused for good (kept for inspection)",
            registry=r,
        )
        self.weights_pending = Gauge(
            "kinitro_validator_weights_pending", "Weight sets received, not yet set", registry=r
        )
        self.weights_set_at = Gauge(
            "kinitro_validator_weights_last_set_timestamp_seconds",
            "Unix time the last weights were set on chain (0: never)",
            registry=r,
        )
        self.weights_age = Gauge(
            "kinitro_validator_weights_age_seconds",
            "Seconds since the last weights were set on chain (+Inf: never)",
            registry=r,
        )
        self.scrape_ok = Gauge(
            "kinitro_validator_metrics_refresh_timestamp_seconds",
            "Unix time the metrics were last read from the database",
            registry=r,
        )

    def update(self, status: ValidatorStatus) -> None:
        """Set every gauge from a :class:`~kinitro.jobqueue.records.ValidatorStatus`."""
        now = datetime.now(UTC)
        conn, depths, last = status.connection, status.depths, status.last_weights
        fresh = (
            conn.state == "connected"
            and conn.last_seen_at is not None
            and (now - conn.last_seen_at).total_seconds() <= self.stale_after_s
        )
        self.up.set(1 if fresh else 0)
        for state in CONNECTION_STATES:
            self.state.labels(state).set(1 if conn.state == state else 0)
        self.reconnects.set(conn.reconnects)
        self.jobs_queued.set(depths.jobs_queued)
        self.jobs_in_flight.set(depths.jobs_in_flight)
        for state, count in depths.jobs_by_state.items():
            self.jobs.labels(state).set(count)
        self.outbox.set(depths.outbox)
        oldest = depths.outbox_oldest_at
        self.outbox_lag.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        self.dead.set(depths.outbox_dead)
        self.weights_pending.set(status.pending_weights)
        set_at = last.set_at if last is not None else None
        self.weights_set_at.set(set_at.timestamp() if set_at else 0)
        self.weights_age.set((now - set_at).total_seconds() if set_at else float("inf"))
        self.scrape_ok.set(time.time())

    async def refresh_forever(self, jq: NodeStatus, interval_s: float) -> None:
        """Read the status every ``interval_s`` until cancelled; a failed read keeps the
        previous values (``…_refresh_timestamp_seconds`` then stops moving)."""
        while True:
            try:
                self.update(await jq.status())
            except Exception as exc:  # noqa: BLE001 - the database may be down: retry
                log.warning("metrics refresh failed", extra={"error": str(exc)[:300]})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.sleep(interval_s)
