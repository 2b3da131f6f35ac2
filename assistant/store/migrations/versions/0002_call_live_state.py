"""call live state: the snapshot a call resumes from (severity, episodes, alerts, advisor)

Revision ID: 0002_live_state
Revises: 0001
Create Date: 2026-11-30 06:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_live_state"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        # Calls stored before this revision have none: they resume with their last_seq only, as before.
        batch_op.add_column(sa.Column("live_state", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("live_state")
