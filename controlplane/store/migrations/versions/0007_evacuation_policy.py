"""evacuation policy per data centre (what happens to instances of a DOWN host)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datacentres", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "evacuation_policy", sa.String(length=32), nullable=False, server_default="none"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("datacentres", schema=None) as batch_op:
        batch_op.drop_column("evacuation_policy")
