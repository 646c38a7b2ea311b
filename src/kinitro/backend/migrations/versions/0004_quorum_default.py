"""quorum: a competition's min_validators may be null (the backend's default, 3)

The old default quorum was 1: one validator's result alone could crown a leader. Rows at
1 become null, i.e. the backend's ``min_validators`` setting; an operator who really wants
a quorum of 1 sets it again explicitly.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column(
        "competitions", "min_validators", nullable=True, server_default=None, type_=sa.Integer()
    )
    op.execute("UPDATE competitions SET min_validators = NULL WHERE min_validators = 1")


def downgrade() -> None:
    op.execute("UPDATE competitions SET min_validators = 1 WHERE min_validators IS NULL")
    op.alter_column(
        "competitions", "min_validators", nullable=False, server_default="1", type_=sa.Integer()
    )
