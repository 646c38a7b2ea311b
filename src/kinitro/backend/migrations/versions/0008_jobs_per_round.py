"""jobs per round: a submission gets one job per benchmark in every round it is evaluated

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_jobs_submission_id_benchmark_id", "jobs", type_="unique")
    op.create_unique_constraint(
        "uq_jobs_submission_id_benchmark_id_round_id",
        "jobs",
        ["submission_id", "benchmark_id", "round_id"],
    )
    op.drop_column("competitions", "win_margin")


def downgrade() -> None:
    import sqlalchemy as sa

    op.add_column(
        "competitions",
        sa.Column("win_margin", sa.Float(), server_default="0.05", nullable=False),
    )
    op.drop_constraint("uq_jobs_submission_id_benchmark_id_round_id", "jobs", type_="unique")
    op.create_unique_constraint(
        "uq_jobs_submission_id_benchmark_id", "jobs", ["submission_id", "benchmark_id"]
    )
