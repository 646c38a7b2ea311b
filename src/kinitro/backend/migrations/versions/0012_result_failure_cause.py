"""results keep their failure cause beside the free-text error

A result's ``error`` can quote the agent (an exception message, its stderr), so the public
reads only its cause until the round's reveal (``kinitro.backend.embargo``). Results
stored before kept the cause only when no error text came with it: those are backfilled.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CAUSES = (
    "agent_timeout",
    "agent_crash",
    "invalid_action",
    "protocol_violation",
    "invalid_bundle",
    "sandbox_start",
    "simulator_error",
    "worker_lost",
    "internal",
)


def upgrade() -> None:
    op.add_column("results", sa.Column("failure_cause", sa.Text(), nullable=True))
    results = sa.table("results", sa.column("error", sa.Text), sa.column("failure_cause", sa.Text))
    op.execute(
        results.update().where(results.c.error.in_(_CAUSES)).values(failure_cause=results.c.error)
    )


def downgrade() -> None:
    op.drop_column("results", "failure_cause")
