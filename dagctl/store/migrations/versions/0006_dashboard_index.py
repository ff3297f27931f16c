"""The dashboard's index: a DAG's runs newest first (its run history and the last ~20
marks per DAG on the DAGs page) without scanning every run of every DAG.

Revision ID: 0006
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag_run") as batch:
        batch.create_index("ix_dag_run_dag_name_id", ["dag_name", "id"])


def downgrade() -> None:
    with op.batch_alter_table("dag_run") as batch:
        batch.drop_index("ix_dag_run_dag_name_id")
