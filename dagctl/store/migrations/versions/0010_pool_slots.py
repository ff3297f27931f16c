"""Pool slots as rows (pool_slot: one row per slot, naming the attempt that took it), so
schedulers claim slots of one pool side by side with SKIP LOCKED instead of queueing on
the pool's row; task_priority (tasks whose priority is not 0); scheduler_queue (the
queues each scheduler serves); and a partial index on the claimable attempts in claim
order.

Revision ID: 0010
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0011"
branch_labels = None
depends_on = None

CLAIMABLE = "status IN ('queued', 'waiting')"


def upgrade() -> None:
    op.create_table(
        "pool_slot",
        sa.Column("pool", sa.String(200), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("pool", "slot", name="pk_pool_slot"),
    )
    # The slot rows of the pools already defined; later syncs keep them in step.
    op.execute(
        "WITH RECURSIVE n(slot) AS (SELECT 1 UNION ALL SELECT slot + 1 FROM n"
        " WHERE slot < (SELECT coalesce(max(slots), 0) FROM pool))"
        " INSERT INTO pool_slot (pool, slot)"
        " SELECT pool.name, n.slot FROM pool JOIN n ON n.slot <= pool.slots"
    )
    op.create_table(
        "task_priority",
        sa.Column("dag_name", sa.String(200), nullable=False),
        sa.Column("task_name", sa.String(255), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dag_name", "task_name", name="pk_task_priority"),
    )
    op.create_table(
        "scheduler_queue",
        sa.Column("scheduler_id", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("scheduler_id", "queue", name="pk_scheduler_queue"),
    )
    op.create_index(
        "ix_task_run_queued_at_id",
        "task_run",
        ["queued_at", "id"],
        postgresql_where=sa.text(CLAIMABLE),
        sqlite_where=sa.text(CLAIMABLE),
    )


def downgrade() -> None:
    op.drop_index("ix_task_run_queued_at_id", table_name="task_run")
    op.drop_table("scheduler_queue")
    op.drop_table("task_priority")
    op.drop_table("pool_slot")
