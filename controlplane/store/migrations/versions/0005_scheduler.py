"""scheduler: data-centre placement policy, server groups, instance group and explanation

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datacentres", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "placement_policy", sa.String(length=16), nullable=False, server_default="spread"
            )
        )
    op.create_table(
        "server_groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("project", sa.String(length=32), nullable=False),
        sa.Column("org_path", sa.String(length=200), nullable=False),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("max_per_host", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project"], ["organisations.code"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project", "name", name="uq_server_groups_project_name"),
    )
    with op.batch_alter_table("server_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_server_groups_org_path"), ["org_path"], unique=False)
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("server_group_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("placement", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("scheduling", sa.JSON(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_instances_server_group_id"), ["server_group_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_server_group_id"))
        batch_op.drop_column("scheduling")
        batch_op.drop_column("placement")
        batch_op.drop_column("server_group_id")
    with op.batch_alter_table("server_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_server_groups_org_path"))
    op.drop_table("server_groups")
    with op.batch_alter_table("datacentres", schema=None) as batch_op:
        batch_op.drop_column("placement_policy")
