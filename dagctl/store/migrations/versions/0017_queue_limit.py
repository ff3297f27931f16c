"""queue_limit: the per-queue concurrency limits of dagctl.yaml's `queues:` (a claim of
a limited queue's attempts locks its row).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_limit",
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("max_running", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("queue", name="pk_queue_limit"),
    )


def downgrade() -> None:
    op.drop_table("queue_limit")
