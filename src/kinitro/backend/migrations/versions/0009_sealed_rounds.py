"""sealed rounds: a round's commitment on chain and its revealed secret; per-validator seeds

Job seeds are no longer stored: each validator is sent the seed derived from the round
secret and its hotkey (``kinitro.protocol.rounds``). Jobs still live at the upgrade ran
on the old, shared round seed; they are queued again (their telemetry dropped, their
assignments expired as for an admin rerun) so every episode of a round derives from its
secret. Rounds opened before have no commitment: the scheduler commits those still open.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "SELECT id FROM jobs WHERE state IN ('queued', 'running')"


def upgrade() -> None:
    op.add_column("competitions", sa.Column("round_seconds", sa.Integer(), nullable=True))
    op.add_column("eval_rounds", sa.Column("commitment", sa.Text(), nullable=True))
    op.add_column("eval_rounds", sa.Column("committer_hotkey", sa.Text(), nullable=True))
    op.add_column("eval_rounds", sa.Column("commit_block", sa.BigInteger(), nullable=True))
    op.add_column(
        "eval_rounds", sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("eval_rounds", sa.Column("secret", sa.Text(), nullable=True))
    op.drop_column("eval_rounds", "seed")
    op.drop_column("eval_rounds", "seed_hash")
    for table in ("results", "episodes", "episode_steps", "job_status_history"):
        op.execute(f"DELETE FROM {table} WHERE job_id IN ({_LIVE})")  # noqa: S608 - constants
    op.execute(
        f"UPDATE job_assignments SET state = 'expired' WHERE job_id IN ({_LIVE}) "  # noqa: S608
        "AND state NOT IN ('refused', 'rejected', 'revoked')"
    )
    op.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'")
    op.drop_column("jobs", "seed")


def downgrade() -> None:
    op.add_column("jobs", sa.Column("seed", sa.BigInteger(), nullable=False, server_default="0"))
    op.alter_column("jobs", "seed", server_default=None)
    op.add_column(
        "eval_rounds",
        sa.Column("seed_hash", sa.Text(), nullable=False, server_default=""),
    )
    op.alter_column("eval_rounds", "seed_hash", server_default=None)
    op.add_column("eval_rounds", sa.Column("seed", sa.BigInteger(), nullable=True))
    op.drop_column("eval_rounds", "secret")
    op.drop_column("eval_rounds", "committed_at")
    op.drop_column("eval_rounds", "commit_block")
    op.drop_column("eval_rounds", "committer_hotkey")
    op.drop_column("eval_rounds", "commitment")
    op.drop_column("competitions", "round_seconds")
