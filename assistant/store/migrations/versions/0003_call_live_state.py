"""call live state: the snapshot a call resumes from (severity, episodes, alerts, advisor); one flag per chunk

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 06:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        # Calls stored before this revision have none: they resume with their last_seq only, as before.
        batch_op.add_column(sa.Column("live_state", sa.Text(), nullable=True))
    # A chunk has at most one flag row (the service writes one per flagged customer chunk); unique, so that a
    # worker resuming a call can write again the flags it finds in the call's history without doubling them.
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.drop_index("ix_flags_call_seq")
        batch_op.create_index("ix_flags_call_seq", ["call_id", "seq"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.drop_index("ix_flags_call_seq")
        batch_op.create_index("ix_flags_call_seq", ["call_id", "seq"], unique=False)
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("live_state")
