"""notification: the alert outbox.

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dag_name", sa.String(200), nullable=False),
        sa.Column("dag_run_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("channels", sa.Text(), nullable=False),
        sa.Column("sent_to", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dedup_key", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notification"),
        sa.UniqueConstraint("dedup_key", name="uq_notification_dedup_key"),
    )
    op.create_index("ix_notification_status_next_attempt_at", "notification", ["status", "next_attempt_at"])
    op.create_index("ix_notification_dag_name_id", "notification", ["dag_name", "id"])
    op.create_index("ix_notification_dag_run_id", "notification", ["dag_run_id"])


def downgrade() -> None:
    op.drop_index("ix_notification_dag_run_id", "notification")
    op.drop_index("ix_notification_dag_name_id", "notification")
    op.drop_index("ix_notification_status_next_attempt_at", "notification")
    op.drop_table("notification")
