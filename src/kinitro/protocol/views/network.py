"""Validators and their standing, weight sets, rounds and platform counters."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from kinitro.protocol.views._base import Json, View


class ValidatorRow(View):
    """A validator as this backend knows it (a row of the validators table)."""

    hotkey: str
    uid: int | None
    connected: bool
    session_id: str | None
    replica_id: str | None
    validator_version: str | None
    runtime: Json | None
    lite: bool
    queue_depth: int | None
    jobs_in_flight: int | None
    connected_at: datetime | None
    last_seen_at: datetime | None
    standing_since: datetime | None
    suspended_until: datetime | None
    created_at: datetime


class Validator(ValidatorRow):
    """A validator with its work done and its standing."""

    jobs_done: int
    strikes: int
    counting_strikes: int
    """Strikes towards a suspension (since its standing began)."""
    suspended: bool
    disagreement: float | None
    """Mean distance of its success rates from their job's median."""
    compared_jobs: int
    audits_passed: int
    audits_failed: int
    audit_pass_rate: float | None


class Strike(View):
    id: int
    validator_hotkey: str
    job_id: str
    reason: str
    detail: str
    created_at: datetime


class Audit(View):
    """A replay (``kind`` replay) or agent re-run audit of a validator's episode."""

    id: int
    job_id: str
    validator_hotkey: str
    episode_index: int
    kind: str
    state: str
    attempts: int
    detail: str | None
    reported: Json | None
    replayed: Json | None
    created_at: datetime
    finished_at: datetime | None


# ------------------------------------------------------------ weights, rounds, stats


class WeightShare(View):
    """A competition's part of a weight set."""

    leader_submission_id: int | None
    leader_uid: int | None
    points: float


class WeightSet(View):
    """Weights computed by the backend, by uid (keys are uids as text)."""

    id: int
    weights_id: str
    netuid: int
    weights: dict[str, float]
    summary: dict[str, WeightShare]
    digest: str
    """sha256 of the canonical weights."""
    computed_at: datetime


class Round(View):
    """An evaluation round: the chain ``commitment`` from the start, the ``secret`` once
    revealed after ``ends_at`` (``sealed_until`` until then)."""

    id: str
    competition_id: str
    starts_at: datetime
    ends_at: datetime
    commitment: str | None
    committer_hotkey: str | None
    commit_block: int | None
    committed_at: datetime | None
    sealed_until: datetime | None
    revealed_at: datetime | None
    secret: str | None


class Stats(View):
    """Platform counters (``GET /api/v1/stats`` and the ``stats`` realtime event); a
    counter left out is zero."""

    submissions: dict[str, int] = Field(default_factory=dict)
    """Submissions by status."""
    jobs: dict[str, int] = Field(default_factory=dict)
    """Jobs by state."""
    validators_connected: int = 0
    episodes: int = 0
    step_samples: int = 0
    results: int = 0


class Health(View):
    """``GET /health``: 200 with ``status`` ok, 503 ``degraded`` when the database does not
    answer."""

    status: str
    db: bool
    replica_id: str
    version: str
    validators_connected: int
    realtime_clients: int
