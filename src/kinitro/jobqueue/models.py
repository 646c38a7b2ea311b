"""SQLAlchemy models of the validator database (the part Kinitro owns).

pgqueuer's own tables (``pgqueuer``, ``pgqueuer_log``, ``pgqueuer_schedules``,
``pgqueuer_statistics``) live in the same database; they are installed by the first
migration from pgqueuer's DDL and are deliberately not modelled here (see
:data:`PGQUEUER_TABLES`).

Tables:

* ``vq_jobs``          every ``eval_job`` as received (payload kept verbatim), keyed by
                       ``job_id``, plus its current lifecycle state.
* ``vq_outbox``        messages for the backend waiting for its ack; ``id`` gives the
                       send order (per job it is also the append order, see repository).
* ``vq_outbox_dead``   messages the backend rejected permanently (kept, never resent).
* ``vq_weights``       ``set_weights`` received from the backend and what became of them.
* ``vq_connection``    one row: the live connection as last reported by ``validator run``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MIGRATION_TREE = Path(__file__).resolve().parent / "migrations"
"""The validator schema's Alembic tree (``kinitro.core.migrations`` runs it)."""

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: pgqueuer-owned objects in the validator database (installed by migration 0001).
PGQUEUER_TABLES = frozenset(
    {"pgqueuer", "pgqueuer_log", "pgqueuer_schedules", "pgqueuer_statistics"}
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> Any:
    return func.now()


class JobRow(Base):
    """One evaluation job as received from the backend, and its local lifecycle state."""

    __tablename__ = "vq_jobs"

    job_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64))
    submission_id: Mapped[str] = mapped_column(String(128))
    competition_id: Mapped[str] = mapped_column(String(128))
    miner_hotkey: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    # Lifecycle as reported by the evaluator (JobState value).
    state: Mapped[str] = mapped_column(String(32), server_default="queued")
    status_seq: Mapped[int] = mapped_column(Integer, server_default="0")
    episodes_done: Mapped[int] = mapped_column(Integer, server_default="0")
    episodes_total: Mapped[int] = mapped_column(Integer, server_default="0")
    detail: Mapped[str | None] = mapped_column(Text)
    has_result: Mapped[bool] = mapped_column(Boolean, server_default="false")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (Index("ix_vq_jobs_state", "state"),)


class OutboxRow(Base):
    """A message for the backend, kept until the backend acknowledges it."""

    __tablename__ = "vq_outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str | None] = mapped_column(
        String(128), ForeignKey("vq_jobs.job_id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    send_count: Mapped[int] = mapped_column(Integer, server_default="0")
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_vq_outbox_job_id_id", "job_id", "id"),)


class OutboxDeadRow(Base):
    """A message the backend refused for good (bad data); kept for inspection."""

    __tablename__ = "vq_outbox_dead"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str | None] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rejected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    error_code: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)


class WeightsRow(Base):
    """A ``set_weights`` from the backend and the outcome of setting it on chain."""

    __tablename__ = "vq_weights"

    weights_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64))
    netuid: Mapped[int] = mapped_column(Integer)
    weights: Mapped[dict[str, Any]] = mapped_column(JSONB)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    # pending → set | superseded | failed
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    block: Mapped[int | None] = mapped_column(BigInteger)
    reveal_block: Mapped[int | None] = mapped_column(BigInteger)  # commit-reveal subnets
    refreshes: Mapped[int] = mapped_column(Integer, server_default="0")
    set_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_vq_weights_status", "status"),)


class ConnectionRow(Base):
    """Single row (id = 1): the validator process's view of its backend connection."""

    __tablename__ = "vq_connection"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), server_default="disconnected")
    backend_url: Mapped[str | None] = mapped_column(Text)
    hotkey: Mapped[str | None] = mapped_column(String(64))
    uid: Mapped[int | None] = mapped_column(Integer)
    session_id: Mapped[str | None] = mapped_column(String(128))
    lite: Mapped[bool] = mapped_column(Boolean, server_default="false")
    pid: Mapped[int | None] = mapped_column(Integer)
    connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    reconnects: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic filter: pgqueuer's tables belong to pgqueuer, not to our models."""
    if type_ == "table":
        return name not in PGQUEUER_TABLES
    table = getattr(obj, "table", None)
    return table is None or table.name not in PGQUEUER_TABLES
