"""consolidation for energy: host power models and state notes, stored consolidation plans

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("hosts", sa.Column("idle_watts", sa.Float(), nullable=True))
    op.add_column("hosts", sa.Column("peak_watts", sa.Float(), nullable=True))
    op.add_column("hosts", sa.Column("state_note", sa.String(length=200), nullable=True))
    op.create_table(
        "consolidations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("datacentre", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reserve", sa.Integer(), nullable=False),
        sa.Column("max_fill", sa.Float(), nullable=False),
        sa.Column("max_parallel", sa.Integer(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=63), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(["datacentre"], ["datacentres.code"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_consolidations_datacentre", "consolidations", ["datacentre"])
    op.create_index("ix_consolidations_state", "consolidations", ["state"])
    op.create_table(
        "consolidation_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consolidation_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("instance_name", sa.String(length=63), nullable=False),
        sa.Column("source_host_id", sa.String(length=36), nullable=False),
        sa.Column("source_name", sa.String(length=63), nullable=False),
        sa.Column("target_host_id", sa.String(length=36), nullable=False),
        sa.Column("target_name", sa.String(length=63), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("ram_mib", sa.Integer(), nullable=False),
        sa.Column("disk_gib", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("migration_id", sa.String(length=36), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(["consolidation_id"], ["consolidations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consolidation_id", "seq", name="uq_consolidation_steps_seq"),
    )
    op.create_index(
        "ix_consolidation_steps_consolidation_id", "consolidation_steps", ["consolidation_id"]
    )
    op.create_table(
        "consolidation_hosts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consolidation_id", sa.String(length=36), nullable=False),
        sa.Column("host_id", sa.String(length=36), nullable=False),
        sa.Column("host_name", sa.String(length=63), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["consolidation_id"], ["consolidations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_consolidation_hosts_consolidation_id", "consolidation_hosts", ["consolidation_id"]
    )


def downgrade() -> None:
    op.drop_table("consolidation_hosts")
    op.drop_table("consolidation_steps")
    op.drop_table("consolidations")
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("state_note")
        batch.drop_column("peak_watts")
        batch.drop_column("idle_watts")
