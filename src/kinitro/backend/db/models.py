"""SQLAlchemy 2 typed declarative models of the backend database.

The Alembic tree in ``kinitro/backend/migrations`` must agree with these models; a drift
test (``tests/backend/test_migrations.py``) compares them. Every table that ingests wire
messages carries a unique constraint on the message's natural key so that writes are
idempotent upserts (``INSERT … ON CONFLICT``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MIGRATION_TREE = Path(__file__).resolve().parent.parent / "migrations"
"""The backend schema's Alembic tree (``kinitro.core.migrations`` runs it)."""

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = dict[str, Any]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        Json: JSONB,
        list[Any]: JSONB,
        int: BigInteger,
        str: Text,
    }


def _now() -> Any:
    return mapped_column(server_default=func.now())


class Competition(Base):
    """A competition: benchmarks to run, points it is worth, rules to become leader."""

    __tablename__ = "competitions"

    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    description: Mapped[str] = mapped_column(server_default="")
    # list of protocol.common.BenchmarkSpec dicts
    benchmarks: Mapped[list[Any]]
    points: Mapped[float] = mapped_column(Float, server_default="1")
    active: Mapped[bool] = mapped_column(Boolean, server_default="false")
    min_success_rate: Mapped[float] = mapped_column(Float, server_default="0")
    min_validators: Mapped[int | None] = mapped_column(Integer)  # quorum; null: backend default
    # crowning: a leader needs this many scored episodes and a Wilson lower bound above
    # min_leader_score (until one qualifies, the competition's share goes to the owner uid)
    min_episodes: Mapped[int] = mapped_column(Integer, server_default="30")
    min_leader_score: Mapped[float] = mapped_column(Float, server_default="0")
    approval_mode: Mapped[str] = mapped_column(server_default="auto")  # auto | admin
    replication: Mapped[int | None] = mapped_column(Integer)
    # activation is refused while the expert baseline exceeds this (null: no limit)
    max_expert_baseline: Mapped[float | None] = mapped_column(Float)
    round_seconds: Mapped[int | None] = mapped_column(Integer)  # null: backend default
    # protocol.baselines.Baselines of the current benchmarks (dropped when they change)
    baselines: Mapped[Json | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Submission(Base):
    """One commitment seen on chain. Natural key: (miner_hotkey, commitment_block)."""

    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("miner_hotkey", "commitment_block"),
        Index("ix_submissions_competition_status", "competition_id", "status"),
        Index("ix_submissions_sha256", "artifact_sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    competition_id: Mapped[str | None] = mapped_column(
        ForeignKey("competitions.id", ondelete="SET NULL")
    )
    miner_hotkey: Mapped[str]
    miner_uid: Mapped[int | None] = mapped_column(Integer)
    commitment: Mapped[str]
    commitment_block: Mapped[int]
    artifact_registry: Mapped[str | None]
    artifact_repo: Mapped[str | None]
    artifact_revision: Mapped[str | None]
    artifact_sha256: Mapped[str | None]
    artifact_size: Mapped[int | None]
    # the bundle manifest's `deterministic` (agent re-run audits); null until an audit asks
    deterministic: Mapped[bool | None]
    # pending | rejected | scheduled | evaluated | superseded
    status: Mapped[str] = mapped_column(server_default="pending")
    rejection_reason: Mapped[str | None]
    rejection_detail: Mapped[str | None]
    # earliest submission with the same artifact sha256 (itself when original)
    credited_submission_id: Mapped[int | None] = mapped_column(
        ForeignKey("submissions.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class EvalRound(Base):
    """An evaluation round (sealed: ``kinitro.protocol.rounds``). Its ``commitment`` to the
    round secret is written on chain before any of its jobs is sent (``commit_block``);
    the ``secret`` is stored, and public, from ``revealed_at`` on (after ``ends_at``)."""

    __tablename__ = "eval_rounds"

    id: Mapped[str] = mapped_column(primary_key=True)
    competition_id: Mapped[str] = mapped_column(
        ForeignKey("competitions.id", ondelete="CASCADE"), index=True
    )
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    commitment: Mapped[str | None]  # kr1 text; null for rounds opened before sealing
    committer_hotkey: Mapped[str | None]
    commit_block: Mapped[int | None]
    committed_at: Mapped[datetime | None]
    secret: Mapped[str | None]  # hex, set at the reveal
    revealed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class Job(Base):
    """One evaluation of a submission on one benchmark in one round (the leader and the top
    challengers get one every round). Natural key: id (job_id)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index(
            "uq_jobs_submission_benchmark_round",
            "submission_id",
            "benchmark_id",
            "round_id",
            unique=True,
            postgresql_where=text("audit_of_job IS NULL"),
        ),
        Index("ix_jobs_state", "state"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    competition_id: Mapped[str] = mapped_column(ForeignKey("competitions.id", ondelete="CASCADE"))
    benchmark_id: Mapped[str]
    benchmark: Mapped[Json]
    round_id: Mapped[str] = mapped_column(ForeignKey("eval_rounds.id"))
    # an agent re-run audit (kinitro.backend.reruns): episode audit_of_episode of the job
    # audit_of_job as validator audit_of_validator played it, re-run by others on its seed
    # (never scored, never sent to that validator)
    audit_of_job: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    audit_of_validator: Mapped[str | None]
    audit_of_episode: Mapped[int | None] = mapped_column(Integer)
    replication: Mapped[int] = mapped_column(Integer)
    deadline_s: Mapped[int] = mapped_column(Integer)
    # queued | running | completed | failed | cancelled
    state: Mapped[str] = mapped_column(server_default="queued")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None]


class JobAssignment(Base):
    """A job leased to one validator. Natural key: (job_id, validator_hotkey)."""

    __tablename__ = "job_assignments"
    __table_args__ = (
        UniqueConstraint("job_id", "validator_hotkey"),
        Index("ix_job_assignments_validator_state", "validator_hotkey", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    validator_hotkey: Mapped[str]
    # message id of the eval_job frame: stable across resends, acked by the validator
    message_id: Mapped[str] = mapped_column(unique=True)
    attempt: Mapped[int] = mapped_column(Integer, server_default="1")
    # assigned | acked | running | completed | failed | expired | refused | cancelled
    # | rejected (its report failed a cross-check or an audit: never counted, never
    # re-offered) | revoked (its validator was suspended before it finished)
    state: Mapped[str] = mapped_column(server_default="assigned")
    lease_expires_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # when a completed result first arrived before all its episodes (held, see crosscheck)
    result_held_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class JobStatusEvent(Base):
    """job_status history. Natural key: (job_id, validator_hotkey, seq)."""

    __tablename__ = "job_status_history"
    __table_args__ = (UniqueConstraint("job_id", "validator_hotkey", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    validator_hotkey: Mapped[str]
    seq: Mapped[int]
    state: Mapped[str]
    detail: Mapped[str | None]
    episodes_done: Mapped[int] = mapped_column(Integer)
    episodes_total: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    received_at: Mapped[datetime] = _now()


class Result(Base):
    """eval_result of one validator for one job. Natural key: (job_id, validator_hotkey)."""

    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("job_id", "validator_hotkey"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    validator_hotkey: Mapped[str]
    state: Mapped[str]
    metrics: Mapped[Json | None]
    success_rate: Mapped[float | None] = mapped_column(Float)
    episodes: Mapped[int | None] = mapped_column(Integer)
    successes: Mapped[int | None] = mapped_column(Integer)
    # free text (it can quote the agent: sealed until the round's reveal) and its cause
    error: Mapped[str | None]
    failure_cause: Mapped[str | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    evaluator_version: Mapped[str | None]
    # protocol.runtime.RuntimeVersions of the evaluator, and its key (results with
    # different keys are never combined in one score); NULL before protocol 2
    runtime: Mapped[Json | None]
    runtime_key: Mapped[str | None]
    received_at: Mapped[datetime] = _now()


class Episode(Base):
    """Episode summary. Natural key: (job_id, validator_hotkey, episode_index)."""

    __tablename__ = "episodes"
    __table_args__ = (UniqueConstraint("job_id", "validator_hotkey", "episode_index"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    validator_hotkey: Mapped[str]
    episode_index: Mapped[int] = mapped_column(Integer)
    task: Mapped[str]
    task_episode: Mapped[int] = mapped_column(Integer)
    # simulator seed (cross-checked on ingest; never public before the round's reveal);
    # NULL for episodes stored before protocol 3
    seed: Mapped[int | None]
    success: Mapped[bool]
    total_reward: Mapped[float] = mapped_column(Float)
    steps: Mapped[int] = mapped_column(Integer)
    steps_to_success: Mapped[int | None] = mapped_column(Integer)
    terminated: Mapped[bool]
    truncated: Mapped[bool]
    failure_cause: Mapped[str | None]
    failure_detail: Mapped[str | None]
    actions_ref: Mapped[str | None]
    # protocol.fingerprint of the actions (behavioural copies); never public
    action_fingerprint: Mapped[str | None]
    media_refs: Mapped[list[Any]]
    duration_s: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime] = _now()


class EpisodeStepBatch(Base):
    """A batch of step samples. Natural key: (job_id, validator_hotkey, episode_index,
    batch_index)."""

    __tablename__ = "episode_steps"
    __table_args__ = (
        UniqueConstraint("job_id", "validator_hotkey", "episode_index", "batch_index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    validator_hotkey: Mapped[str]
    episode_index: Mapped[int] = mapped_column(Integer)
    batch_index: Mapped[int] = mapped_column(Integer)
    first_step: Mapped[int] = mapped_column(Integer)
    n_samples: Mapped[int] = mapped_column(Integer)
    # plain JSON (text, validated) rather than JSONB: stored as received, several times
    # cheaper to ingest; it is only ever read back whole
    samples: Mapped[list[Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = _now()


class Validator(Base):
    """A validator hotkey that has authenticated at least once."""

    __tablename__ = "validators"

    hotkey: Mapped[str] = mapped_column(primary_key=True)
    uid: Mapped[int | None] = mapped_column(Integer)
    connected: Mapped[bool] = mapped_column(Boolean, server_default="false")
    session_id: Mapped[str | None]
    replica_id: Mapped[str | None]
    validator_version: Mapped[str | None]
    runtime: Mapped[Json | None]  # RuntimeVersions announced in the last handshake
    lite: Mapped[bool] = mapped_column(Boolean, server_default="false")
    queue_depth: Mapped[int | None] = mapped_column(Integer)
    jobs_in_flight: Mapped[int | None] = mapped_column(Integer)
    connected_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    # standing: strikes count from standing_since; over the threshold the validator is
    # left out of assignments and quorums until suspended_until (or an admin reinstates)
    standing_since: Mapped[datetime | None]
    suspended_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class ValidatorStrike(Base):
    """A report of a validator refused by a cross-check, or an audit it failed. At most one
    per (validator, job): a job is refused once. ``reason``: protocol ``StrikeReason``."""

    __tablename__ = "validator_strikes"
    __table_args__ = (
        UniqueConstraint("validator_hotkey", "job_id"),
        Index("ix_validator_strikes_validator_created", "validator_hotkey", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    validator_hotkey: Mapped[str]
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    reason: Mapped[str]
    detail: Mapped[str]
    created_at: Mapped[datetime] = _now()


class Audit(Base):
    """One logged episode of a validator re-simulated after its round's reveal (see
    ``kinitro.backend.audits``) or re-run by other validators (``kinitro.backend.reruns``).
    Natural key: (job_id, validator_hotkey, episode_index, kind)."""

    __tablename__ = "audits"
    __table_args__ = (
        UniqueConstraint("job_id", "validator_hotkey", "episode_index", "kind"),
        Index("ix_audits_state", "state"),
        Index("ix_audits_validator_state", "validator_hotkey", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    validator_hotkey: Mapped[str]
    episode_index: Mapped[int] = mapped_column(Integer)
    # replay (the log re-simulated) | agent_rerun (the agent re-run by other validators)
    kind: Mapped[str] = mapped_column(server_default="replay")
    # pending | passed | failed (a strike: the validator's result for the job is discarded)
    # | skipped (inconclusive: nothing to replay, another simulator runtime, result gone)
    state: Mapped[str] = mapped_column(server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    detail: Mapped[str | None]
    # what the validator reported (steps, total_reward, success, actions_ref) and what the
    # replay under the derived seed gave (plus the log header's own claims)
    reported: Mapped[Json | None]
    replayed: Mapped[Json | None]
    created_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None]


class Score(Base):
    """Aggregated score of a submission (median across validators, per competition)."""

    __tablename__ = "scores"

    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True
    )
    competition_id: Mapped[str] = mapped_column(
        ForeignKey("competitions.id", ondelete="CASCADE"), index=True
    )
    success_rate: Mapped[float] = mapped_column(Float)
    ci_low: Mapped[float] = mapped_column(Float)
    ci_high: Mapped[float] = mapped_column(Float)
    episodes: Mapped[int] = mapped_column(Integer)
    successes: Mapped[int] = mapped_column(Integer)
    validators: Mapped[int] = mapped_column(Integer)
    disagreement: Mapped[bool]
    eligible: Mapped[bool]
    copy_of: Mapped[int | None]
    detail: Mapped[Json]
    computed_at: Mapped[datetime] = _now()


class LeaderDecision(Base):
    """Leader history and candidates per competition.

    status: candidate (waiting for admin approval) | leader (current) | dethroned |
    approved (then leader) | rejected.
    """

    __tablename__ = "leader_decisions"
    __table_args__ = (Index("ix_leader_decisions_competition_status", "competition_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    competition_id: Mapped[str] = mapped_column(ForeignKey("competitions.id", ondelete="CASCADE"))
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    status: Mapped[str]
    success_rate: Mapped[float] = mapped_column(Float)
    ci_low: Mapped[float] = mapped_column(Float)
    ci_high: Mapped[float] = mapped_column(Float)
    reason: Mapped[str | None]
    decided_by: Mapped[str | None]
    created_at: Mapped[datetime] = _now()
    decided_at: Mapped[datetime | None]


class WeightSet(Base):
    """Weights computed by the backend, with history. Natural key: weights_id."""

    __tablename__ = "weights"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    weights_id: Mapped[str] = mapped_column(unique=True)
    netuid: Mapped[int] = mapped_column(Integer)
    weights: Mapped[Json]  # {uid (str): weight}
    summary: Mapped[Json]
    digest: Mapped[str]  # sha256 of the canonical weights, to detect a change
    computed_at: Mapped[datetime] = _now()


class ValidatorMessage(Base):
    """Outbox of messages to validators other than jobs (set_weights …), until acked."""

    __tablename__ = "validator_outbox"
    __table_args__ = (UniqueConstraint("validator_hotkey", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    validator_hotkey: Mapped[str]
    message_id: Mapped[str]
    type: Mapped[str]
    payload: Mapped[Json]
    created_at: Mapped[datetime] = _now()
    sent_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]


class ApiKey(Base):
    """Admin/API key: only the sha256 of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str]
    prefix: Mapped[str] = mapped_column(unique=True)
    key_hash: Mapped[str]
    roles: Mapped[list[Any]]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class ChainScanState(Base):
    """Progress of the chain monitor: last fully scanned block per scanner."""

    __tablename__ = "chain_scan_state"

    name: Mapped[str] = mapped_column(primary_key=True)
    netuid: Mapped[int] = mapped_column(Integer)
    last_block: Mapped[int]
    updated_at: Mapped[datetime] = _now()


class AuthNonce(Base):
    """Auth challenges issued to validators: single use, expiring (replay protection
    across replicas)."""

    __tablename__ = "auth_nonces"

    nonce: Mapped[str] = mapped_column(primary_key=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class Render(Base):
    """A video of one episode, rendered from its action log by a render worker
    (:mod:`kinitro.backend.renders`). Natural key: episode_id (one video per episode).

    state: queued → rendering (claimed, ``lease_until``) → done (``video_ref``, ``video``
    the encoder's report) | failed (``error``). origin: ``auto`` (after the round's
    reveal) or ``request`` (the episode page), requests first.
    """

    __tablename__ = "renders"
    __table_args__ = (Index("ix_renders_state_origin", "state", "origin"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    episode_id: Mapped[int] = mapped_column(
        ForeignKey("episodes.id", ondelete="CASCADE"), unique=True
    )
    state: Mapped[str]
    origin: Mapped[str]
    progress: Mapped[float] = mapped_column(Float, server_default="0")
    worker: Mapped[str | None]
    lease_until: Mapped[datetime | None]
    video_ref: Mapped[str | None]
    video: Mapped[Json | None]
    error: Mapped[str | None]
    requested_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None]
