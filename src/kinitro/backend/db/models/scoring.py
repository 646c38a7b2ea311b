"""What scoring produces: scores per submission, leader decisions, and the weight sets
sent to validators."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from kinitro.backend.db.models.base import Base, Json, now


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
    computed_at: Mapped[datetime] = now()


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
    created_at: Mapped[datetime] = now()
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
    computed_at: Mapped[datetime] = now()
