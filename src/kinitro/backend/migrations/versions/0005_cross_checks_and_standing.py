"""cross-checks and validator standing: episode seeds, strikes, suspensions, held results

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("episodes", sa.Column("seed", sa.BigInteger(), nullable=True))
    op.add_column(
        "job_assignments",
        sa.Column("result_held_since", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "validators", sa.Column("standing_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "validators", sa.Column("suspended_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "validator_strikes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("validator_hotkey", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_validator_strikes_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_validator_strikes")),
        sa.UniqueConstraint(
            "validator_hotkey", "job_id", name=op.f("uq_validator_strikes_validator_hotkey_job_id")
        ),
    )
    op.create_index(
        "ix_validator_strikes_validator_created",
        "validator_strikes",
        ["validator_hotkey", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_validator_strikes_validator_created", table_name="validator_strikes")
    op.drop_table("validator_strikes")
    op.drop_column("validators", "suspended_until")
    op.drop_column("validators", "standing_since")
    op.drop_column("job_assignments", "result_held_since")
    op.drop_column("episodes", "seed")
