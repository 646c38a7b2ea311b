"""What the chain monitor records: competitions, the submissions (one commitment each)
and how far each scanner has read the chain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kinitro.backend.db.models.base import Base, Json, now


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
    created_at: Mapped[datetime] = now()
    updated_at: Mapped[datetime] = now()


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
    created_at: Mapped[datetime] = now()
    updated_at: Mapped[datetime] = now()


class ChainScanState(Base):
    """Progress of the chain monitor: last fully scanned block per scanner."""

    __tablename__ = "chain_scan_state"

    name: Mapped[str] = mapped_column(primary_key=True)
    netuid: Mapped[int] = mapped_column(Integer)
    last_block: Mapped[int]
    updated_at: Mapped[datetime] = now()
