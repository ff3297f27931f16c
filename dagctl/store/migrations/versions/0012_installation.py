"""installation: one row holding this state database's random installation id, made
here, at the first migration (what labels the kubernetes manager's pods).

Revision ID: 0012
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("installation_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_installation"),
    )
    # Random, not derived from the URL: every spelling of the database's address
    # (10.0.0.1, db.local, another driver) finds the same id, and two databases never do.
    op.bulk_insert(
        table,
        [
            {
                "id": 1,
                "installation_id": uuid.uuid4().hex[:20],
                "created_at": datetime.now(timezone.utc).replace(tzinfo=None),
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("installation")
