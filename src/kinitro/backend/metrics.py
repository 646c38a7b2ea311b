"""Prometheus metrics of one backend process (own registry, so tests can build many apps)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.ws_messages = Counter(
            "kinitro_backend_validator_messages_total",
            "Frames received on /ws/validator by type and outcome",
            ["type", "outcome"],
            registry=r,
        )
        self.validators_connected = Gauge(
            "kinitro_backend_validators_connected", "Validator sockets on this replica", registry=r
        )
        self.auth_failures = Counter(
            "kinitro_backend_auth_failures_total", "Refused validator logins", ["code"], registry=r
        )
        self.ingest_seconds = Histogram(
            "kinitro_backend_ingest_seconds",
            "Time to store one batch of validator messages (one transaction)",
            registry=r,
        )
        self.realtime_clients = Gauge(
            "kinitro_backend_realtime_clients", "Realtime subscribers on this replica", registry=r
        )
        self.realtime_dropped = Counter(
            "kinitro_backend_realtime_dropped_total", "Slow realtime clients dropped", registry=r
        )
        self.realtime_frames = Counter(
            "kinitro_backend_realtime_frames_total", "Realtime frames queued to clients", registry=r
        )
        self.realtime_refused = Counter(
            "kinitro_backend_realtime_refused_total",
            "Realtime connections refused, by close code (1013 replica full, 4429 address)",
            ["code"],
            registry=r,
        )
        self.rate_limited = Counter(
            "kinitro_backend_rate_limited_total", "REST requests refused with 429", registry=r
        )
        self.events = Counter(
            "kinitro_backend_events_total", "Realtime events received", ["event_type"], registry=r
        )
        self.submissions = Counter(
            "kinitro_backend_submissions_total", "Commitments ingested", ["outcome"], registry=r
        )
        self.jobs_assigned = Counter(
            "kinitro_backend_jobs_assigned_total", "Job assignments to validators", registry=r
        )
        self.leases_expired = Counter(
            "kinitro_backend_leases_expired_total", "Assignments whose lease expired", registry=r
        )
        self.audits = Counter(
            "kinitro_backend_audits_total",
            "Replay audits settled, by outcome (passed, failed, skipped)",
            ["outcome"],
            registry=r,
        )
        self.task_errors = Counter(
            "kinitro_backend_task_errors_total", "Background task failures", ["task"], registry=r
        )
