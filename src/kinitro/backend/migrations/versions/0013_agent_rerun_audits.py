"""agent re-run audits: deterministic bundles re-run by other validators on an episode's seed

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("submissions", sa.Column("deterministic", sa.Boolean(), nullable=True))
    op.add_column("jobs", sa.Column("audit_of_job", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("audit_of_validator", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("audit_of_episode", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_jobs_audit_of_job_jobs"), "jobs", "jobs", ["audit_of_job"], ["id"],
        ondelete="CASCADE",
    )  # fmt: skip
    # a submission has one job per benchmark and round, besides its re-run audit jobs
    op.drop_constraint("uq_jobs_submission_id_benchmark_id_round_id", "jobs", type_="unique")
    op.create_index(
        "uq_jobs_submission_benchmark_round",
        "jobs",
        ["submission_id", "benchmark_id", "round_id"],
        unique=True,
        postgresql_where=sa.text("audit_of_job IS NULL"),
    )
    op.add_column("audits", sa.Column("kind", sa.Text(), server_default="replay", nullable=False))
    op.drop_constraint("uq_audits_job_id_validator_hotkey_episode_index", "audits", type_="unique")
    op.create_unique_constraint(
        op.f("uq_audits_job_id_validator_hotkey_episode_index_kind"),
        "audits",
        ["job_id", "validator_hotkey", "episode_index", "kind"],
    )


def downgrade() -> None:
    op.drop_constraint(
        "uq_audits_job_id_validator_hotkey_episode_index_kind", "audits", type_="unique"
    )
    op.execute("DELETE FROM audits WHERE kind <> 'replay'")
    op.create_unique_constraint(
        "uq_audits_job_id_validator_hotkey_episode_index",
        "audits",
        ["job_id", "validator_hotkey", "episode_index"],
    )
    op.drop_column("audits", "kind")
    op.execute("DELETE FROM jobs WHERE audit_of_job IS NOT NULL")
    op.drop_index("uq_jobs_submission_benchmark_round", table_name="jobs")
    op.create_unique_constraint(
        "uq_jobs_submission_id_benchmark_id_round_id",
        "jobs",
        ["submission_id", "benchmark_id", "round_id"],
    )
    op.drop_constraint(op.f("fk_jobs_audit_of_job_jobs"), "jobs", type_="foreignkey")
    op.drop_column("jobs", "audit_of_episode")
    op.drop_column("jobs", "audit_of_validator")
    op.drop_column("jobs", "audit_of_job")
    op.drop_column("submissions", "deterministic")
