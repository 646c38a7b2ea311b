"""Validators: who authenticated (and their challenges), the strikes and replay audits that
judge their reports, and the outbox of messages to them other than jobs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kinitro.backend.db.models.base import Base, Json, now


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
    created_at: Mapped[datetime] = now()


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
    created_at: Mapped[datetime] = now()


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
    created_at: Mapped[datetime] = now()
    finished_at: Mapped[datetime | None]


class ValidatorMessage(Base):
    """Outbox of messages to validators other than jobs (set_weights …), until acked."""

    __tablename__ = "validator_outbox"
    __table_args__ = (UniqueConstraint("validator_hotkey", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    validator_hotkey: Mapped[str]
    message_id: Mapped[str]
    type: Mapped[str]
    payload: Mapped[Json]
    created_at: Mapped[datetime] = now()
    sent_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]


class AuthNonce(Base):
    """Auth challenges issued to validators: single use, expiring (replay protection
    across replicas)."""

    __tablename__ = "auth_nonces"

    nonce: Mapped[str] = mapped_column(primary_key=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = now()
