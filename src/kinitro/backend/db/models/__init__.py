"""SQLAlchemy 2 typed declarative models of the backend database, one module per part of
the system: ``submissions`` (what the chain monitor records), ``jobs`` (a job's path from
its round to its episodes), ``validators`` (who evaluates, and how they are judged),
``scoring`` and ``admin``. Importing this package registers every table on
``Base.metadata``.

The Alembic tree in ``kinitro/backend/migrations`` must agree with these models; a drift
test (``tests/backend/test_migrations.py``) compares them. Every table that ingests wire
messages carries a unique constraint on the message's natural key so that writes are
idempotent upserts (``INSERT … ON CONFLICT``).
"""

from __future__ import annotations

from pathlib import Path

from kinitro.backend.db.models.admin import ApiKey
from kinitro.backend.db.models.base import Base
from kinitro.backend.db.models.jobs import (
    Episode,
    EpisodeStepBatch,
    EvalRound,
    Job,
    JobAssignment,
    JobStatusEvent,
    Render,
    Result,
)
from kinitro.backend.db.models.scoring import LeaderDecision, Score, WeightSet
from kinitro.backend.db.models.submissions import ChainScanState, Competition, Submission
from kinitro.backend.db.models.validators import (
    Audit,
    AuthNonce,
    Validator,
    ValidatorMessage,
    ValidatorStrike,
)

MIGRATION_TREE = Path(__file__).resolve().parents[2] / "migrations"
"""The backend schema's Alembic tree (``kinitro.core.migrations`` runs it)."""

__all__ = [
    "MIGRATION_TREE",
    "ApiKey",
    "Audit",
    "AuthNonce",
    "Base",
    "ChainScanState",
    "Competition",
    "Episode",
    "EpisodeStepBatch",
    "EvalRound",
    "Job",
    "JobAssignment",
    "JobStatusEvent",
    "LeaderDecision",
    "Render",
    "Result",
    "Score",
    "Submission",
    "Validator",
    "ValidatorMessage",
    "ValidatorStrike",
    "WeightSet",
]
