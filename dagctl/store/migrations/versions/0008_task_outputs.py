"""task_run.outputs: what a successful attempt published ($DAGCTL_OUTPUT), as JSON.

Revision ID: 0008
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_run") as batch:
        batch.add_column(sa.Column("outputs", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_run") as batch:
        batch.drop_column("outputs")
