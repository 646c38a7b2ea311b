"""replay audits: a sample of every validator's logged episodes re-simulated after the reveal

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audits",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("validator_hotkey", sa.Text(), nullable=False),
        sa.Column("episode_index", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("reported", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("replayed", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_audits_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audits")),
        sa.UniqueConstraint(
            "job_id",
            "validator_hotkey",
            "episode_index",
            name=op.f("uq_audits_job_id_validator_hotkey_episode_index"),
        ),
    )
    op.create_index("ix_audits_state", "audits", ["state"], unique=False)
    op.create_index(
        "ix_audits_validator_state", "audits", ["validator_hotkey", "state"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_audits_validator_state", table_name="audits")
    op.drop_index("ix_audits_state", table_name="audits")
    op.drop_table("audits")
