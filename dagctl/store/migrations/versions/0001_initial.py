"""Initial state schema: dag, dag_run, task_run, task_log, scheduler.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dag",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("last_slot", sa.DateTime(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_dag"),
    )
    op.create_table(
        "dag_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("creator", sa.String(200), nullable=False),
        sa.Column("logical_date", sa.DateTime(), nullable=False),
        sa.Column("scheduled_slot", sa.DateTime(), nullable=True),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dirty", sa.Boolean(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dag_run"),
        sa.UniqueConstraint("dag_name", "scheduled_slot", name="uq_dag_run_dag_name_scheduled_slot"),
    )
    op.create_index("ix_dag_run_dag_name_logical_date", "dag_run", ["dag_name", "logical_date"])
    op.create_index("ix_dag_run_status_dirty", "dag_run", ["status", "dirty"])
    op.create_table(
        "task_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_run_id", sa.Integer(), nullable=False),
        sa.Column("dag_name", sa.String(200), nullable=False),
        sa.Column("task_name", sa.String(255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dag_run_id"], ["dag_run.id"], name="fk_task_run_dag_run_id_dag_run", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_task_run"),
        sa.UniqueConstraint(
            "dag_run_id", "task_name", "attempt", name="uq_task_run_dag_run_id_task_name_attempt"
        ),
    )
    op.create_index(
        "ix_task_run_status_not_before_queued_at", "task_run", ["status", "not_before", "queued_at"]
    )
    op.create_index("ix_task_run_lease_owner_status", "task_run", ["lease_owner", "status"])
    op.create_table(
        "task_log",
        sa.Column("task_run_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("truncated_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_run_id"], ["task_run.id"], name="fk_task_log_task_run_id_task_run", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_run_id", "seq", name="pk_task_log"),
    )
    op.create_table(
        "scheduler",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("manager", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_scheduler"),
    )


def downgrade() -> None:
    op.drop_table("scheduler")
    op.drop_table("task_log")
    op.drop_index("ix_task_run_lease_owner_status", table_name="task_run")
    op.drop_index("ix_task_run_status_not_before_queued_at", table_name="task_run")
    op.drop_table("task_run")
    op.drop_index("ix_dag_run_status_dirty", table_name="dag_run")
    op.drop_index("ix_dag_run_dag_name_logical_date", table_name="dag_run")
    op.drop_table("dag_run")
    op.drop_table("dag")
