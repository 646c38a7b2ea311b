"""weights refresh and commit-reveal: the reveal block and the refresh count of vq_weights

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("vq_weights", sa.Column("reveal_block", sa.BigInteger(), nullable=True))
    op.add_column(
        "vq_weights", sa.Column("refreshes", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("vq_weights", "refreshes")
    op.drop_column("vq_weights", "reveal_block")
