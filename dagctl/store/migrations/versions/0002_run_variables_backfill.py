"""Run variables, backfills and retention: dag_run data interval and backfill id, the
backfill table, the maintenance table (periodic chores such as retention).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag_run") as batch:
        batch.add_column(sa.Column("data_interval_start", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("data_interval_end", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("backfill_id", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uq_dag_run_backfill_id_logical_date", ["backfill_id", "logical_date"])
        batch.create_index("ix_dag_run_status_ended_at", ["status", "ended_at"])
    op.create_table(
        "backfill",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_name", sa.String(200), nullable=False),
        sa.Column("start_slot", sa.DateTime(), nullable=False),
        sa.Column("end_slot", sa.DateTime(), nullable=False),
        sa.Column("reprocess", sa.String(16), nullable=False),
        sa.Column("max_active_runs", sa.Integer(), nullable=False),
        sa.Column("reverse", sa.Boolean(), nullable=False),
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("creator", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_backfill"),
    )
    op.create_table(
        "maintenance",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("next_due_at", sa.DateTime(), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_maintenance"),
    )


def downgrade() -> None:
    op.drop_table("maintenance")
    op.drop_table("backfill")
    with op.batch_alter_table("dag_run") as batch:
        batch.drop_index("ix_dag_run_status_ended_at")
        batch.drop_constraint("uq_dag_run_backfill_id_logical_date", type_="unique")
        batch.drop_column("backfill_id")
        batch.drop_column("data_interval_end")
        batch.drop_column("data_interval_start")
