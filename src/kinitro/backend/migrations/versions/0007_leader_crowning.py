"""confident crowning: min_episodes and min_leader_score per competition

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "competitions",
        sa.Column("min_episodes", sa.Integer(), server_default="30", nullable=False),
    )
    op.add_column(
        "competitions",
        sa.Column("min_leader_score", sa.Float(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("competitions", "min_leader_score")
    op.drop_column("competitions", "min_episodes")
