"""Which DAGs each scheduler has loaded: scheduler_dag.

Revision ID: 0005
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_dag",
        sa.Column("scheduler_id", sa.String(64), nullable=False),
        sa.Column("dag_name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("scheduler_id", "dag_name", name="pk_scheduler_dag"),
    )
    op.create_index("ix_scheduler_dag_dag_name", "scheduler_dag", ["dag_name"])


def downgrade() -> None:
    op.drop_index("ix_scheduler_dag_dag_name", table_name="scheduler_dag")
    op.drop_table("scheduler_dag")
