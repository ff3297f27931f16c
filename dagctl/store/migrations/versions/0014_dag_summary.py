"""dag_summary: what `dagctl list` shows of each DAG, stored by the schedulers at sync
with the folder's stat fingerprint, so `list` need not parse every file.

Revision ID: 0014
Revises: 0015
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dag_summary",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("stamp", sa.String(64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_dag_summary"),
    )


def downgrade() -> None:
    op.drop_table("dag_summary")
