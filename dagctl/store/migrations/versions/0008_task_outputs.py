"""task_run.outputs: what a successful attempt published ($DAGCTL_OUTPUT), as JSON,
and a partial index on the attempts that have some.

Revision ID: 0008
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_run") as batch:
        batch.add_column(sa.Column("outputs", sa.Text(), nullable=True))
    op.create_index(
        "ix_task_run_dag_run_id",
        "task_run",
        ["dag_run_id"],
        postgresql_where=sa.text("outputs IS NOT NULL"),
        sqlite_where=sa.text("outputs IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_task_run_dag_run_id", table_name="task_run")
    with op.batch_alter_table("task_run") as batch:
        batch.drop_column("outputs")
