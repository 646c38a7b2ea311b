"""The path of a job: its round, the job, its assignments to validators and their status
history, the results validators report, their episodes, step samples and videos."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.orm import Mapped, mapped_column

from kinitro.backend.db.models.base import Base, Json, now


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
    created_at: Mapped[datetime] = now()


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
    created_at: Mapped[datetime] = now()
    updated_at: Mapped[datetime] = now()
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
    created_at: Mapped[datetime] = now()


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
    received_at: Mapped[datetime] = now()


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
    received_at: Mapped[datetime] = now()


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
    received_at: Mapped[datetime] = now()


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
    received_at: Mapped[datetime] = now()


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
    requested_at: Mapped[datetime] = now()
    finished_at: Mapped[datetime | None]
