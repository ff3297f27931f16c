"""dag.missing_since / dag.missing_reason: DAGs deleted, renamed away or broken.

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag") as batch:
        batch.add_column(sa.Column("missing_since", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("missing_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dag") as batch:
        batch.drop_column("missing_reason")
        batch.drop_column("missing_since")
