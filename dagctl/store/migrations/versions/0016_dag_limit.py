"""dag_limit: `max_active_tasks` of the DAGs that set it (a claim of their attempts
locks the row).

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dag_limit",
        sa.Column("dag_name", sa.String(200), nullable=False),
        sa.Column("max_active_tasks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dag_name", name="pk_dag_limit"),
    )


def downgrade() -> None:
    op.drop_table("dag_limit")
