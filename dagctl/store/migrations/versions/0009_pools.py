"""Pools and work queues: the pool, task_pool and task_queue tables, and the slots an
attempt holds (task_run.pool, task_run.pool_slots).

Revision ID: 0009
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pool",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_pool"),
    )
    op.create_table(
        "task_pool",
        sa.Column("dag_name", sa.String(200), nullable=False),
        sa.Column("task_name", sa.String(255), nullable=False),
        sa.Column("pool", sa.String(200), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dag_name", "task_name", name="pk_task_pool"),
    )
    op.create_table(
        "task_queue",
        sa.Column("dag_name", sa.String(200), nullable=False),
        sa.Column("task_name", sa.String(255), nullable=False),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("dag_name", "task_name", name="pk_task_queue"),
    )
    with op.batch_alter_table("task_run") as batch:
        batch.add_column(sa.Column("pool", sa.String(200), nullable=True))
        batch.add_column(sa.Column("pool_slots", sa.Integer(), nullable=True))
        batch.create_index("ix_task_run_pool_status", ["pool", "status"])


def downgrade() -> None:
    with op.batch_alter_table("task_run") as batch:
        batch.drop_index("ix_task_run_pool_status")
        batch.drop_column("pool_slots")
        batch.drop_column("pool")
    op.drop_table("task_queue")
    op.drop_table("task_pool")
    op.drop_table("pool")
