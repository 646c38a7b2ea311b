"""evaluator runtime versions with every result and validator

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Results stored before this revision have no runtime (NULL): scoring keeps them apart
    # from every known runtime, so they are never combined with newer results.
    op.add_column("results", sa.Column("runtime", postgresql.JSONB(), nullable=True))
    op.add_column("results", sa.Column("runtime_key", sa.Text(), nullable=True))
    op.add_column("validators", sa.Column("runtime", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("validators", "runtime")
    op.drop_column("results", "runtime_key")
    op.drop_column("results", "runtime")
