"""queue_pause: the work queues paused by `dagctl queue pause` (a row while paused).

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_pause",
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("paused_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("queue", name="pk_queue_pause"),
    )


def downgrade() -> None:
    op.drop_table("queue_pause")
