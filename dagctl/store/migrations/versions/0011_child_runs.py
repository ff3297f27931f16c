"""Child runs (a `dag` task runs another DAG): dag_run.parent_run_id and
parent_task_run_id link a child run to the run and attempt that made it;
task_run.child_run_id links that attempt to its child. task_run.map_items: the
items of a `for_each` task (the JSON list on the task's own attempt, one item on
each item's attempt).

Revision ID: 0011
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag_run") as batch:
        batch.add_column(sa.Column("parent_run_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("parent_task_run_id", sa.Integer(), nullable=True))
    op.create_index("ix_dag_run_parent_run_id", "dag_run", ["parent_run_id"])
    with op.batch_alter_table("task_run") as batch:
        batch.add_column(sa.Column("child_run_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("map_items", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_run") as batch:
        batch.drop_column("map_items")
        batch.drop_column("child_run_id")
    op.drop_index("ix_dag_run_parent_run_id", table_name="dag_run")
    with op.batch_alter_table("dag_run") as batch:
        batch.drop_column("parent_task_run_id")
        batch.drop_column("parent_run_id")
