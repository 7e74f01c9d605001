"""instance migrations and drains (live migration, host drain, data-centre evacuation)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "instance_migrations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("source_host_id", sa.String(length=36), nullable=False),
        sa.Column("target_host_id", sa.String(length=36), nullable=False),
        sa.Column("source_datacentre", sa.String(length=32), nullable=False),
        sa.Column("target_datacentre", sa.String(length=32), nullable=False),
        sa.Column("drain_id", sa.String(length=36), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=63), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(["instance_id"], ["instances.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("instance_id", "source_host_id", "target_host_id", "drain_id"):
        op.create_index(f"ix_instance_migrations_{column}", "instance_migrations", [column])
    op.create_index("ix_instance_migrations_phase", "instance_migrations", ["phase"])
    op.create_table(
        "drains",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=36), nullable=False),
        sa.Column("subject_name", sa.String(length=63), nullable=False),
        sa.Column("target_datacentre", sa.String(length=32), nullable=True),
        sa.Column("max_parallel", sa.Integer(), nullable=False),
        sa.Column("end_state", sa.String(length=16), nullable=False),
        sa.Column("until", _TIME, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("maintenance_window", sa.String(length=36), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=63), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drains_subject", "drains", ["subject"])
    op.create_index("ix_drains_state", "drains", ["state"])


def downgrade() -> None:
    op.drop_table("drains")
    op.drop_table("instance_migrations")
