"""call guidance: stage and protocol state per call, supervisors' incident records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        # Calls stored before this revision get an empty state (their QA is replayed from the transcript).
        batch_op.add_column(
            sa.Column("guidance_state", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.alter_column("guidance_state", server_default=None)  # the application always writes it
    op.create_table(
        "incident_reports",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("call_id"),
    )


def downgrade() -> None:
    op.drop_table("incident_reports")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("guidance_state")
