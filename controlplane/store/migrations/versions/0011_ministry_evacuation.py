"""ministry evacuation policy, and the state a silent host returns to

``organisations.evacuation_policy``: a ministry's override of its data centres'
evacuation policy (NULL: inherit). ``hosts.return_state``: the administrative state
(active, draining) a host had when the liveness loop made it SUSPECT or DOWN; its next
heartbeat restores it instead of ACTIVE.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evacuation_policy", sa.String(length=32), nullable=True))
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("return_state", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_column("return_state")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("evacuation_policy")
