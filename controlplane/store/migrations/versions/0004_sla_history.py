"""SLA history: instance state events and maintenance windows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 09:00:00

Instances that exist before this revision get a reconstructed history from their row
(created -> PENDING, launched_at -> RUNNING, updated_at -> their current state), so SLA
reports cover them too; from here on the store's ``before_flush`` listener records every
change as it happens.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("org_path", sa.String(length=200), nullable=False),
        sa.Column("datacentre", sa.String(length=32), nullable=True),
        sa.Column("host_id", sa.String(length=36), nullable=True),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("desired_power", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("instance_events", schema=None) as batch_op:
        batch_op.create_index("ix_instance_events_instance_at", ["instance_id", "at", "id"])
        batch_op.create_index(batch_op.f("ix_instance_events_org_path"), ["org_path"])
        batch_op.create_index(batch_op.f("ix_instance_events_at"), ["at"])

    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("datacentre", sa.String(length=32), nullable=False),
        sa.Column("host_id", sa.String(length=36), nullable=True),
        sa.Column("host_name", sa.String(length=63), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_maintenance_windows_datacentre"), ["datacentre"])
        batch_op.create_index(batch_op.f("ix_maintenance_windows_starts_at"), ["starts_at"])

    _backfill()


def _backfill() -> None:
    """Reconstruct a minimal history for the instances that already exist."""
    bind = op.get_bind()
    instances = sa.table(
        "instances",
        sa.column("id", sa.String),
        sa.column("org_path", sa.String),
        sa.column("datacentre", sa.String),
        sa.column("host_id", sa.String),
        sa.column("state", sa.String),
        sa.column("desired_power", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("launched_at", sa.DateTime(timezone=True)),
    )
    events = sa.table(
        "instance_events",
        sa.column("instance_id", sa.String),
        sa.column("org_path", sa.String),
        sa.column("datacentre", sa.String),
        sa.column("host_id", sa.String),
        sa.column("from_state", sa.String),
        sa.column("to_state", sa.String),
        sa.column("desired_power", sa.String),
        sa.column("at", sa.DateTime(timezone=True)),
    )
    rows = []
    for inst in bind.execute(sa.select(instances)).mappings():
        base = {
            "instance_id": inst["id"],
            "org_path": inst["org_path"],
            "datacentre": inst["datacentre"],
            "host_id": inst["host_id"],
        }
        rows.append(base | {"from_state": None, "to_state": "PENDING",
                            "desired_power": "running", "at": inst["created_at"]})  # fmt: skip
        last = "PENDING"
        if inst["launched_at"] is not None:
            rows.append(base | {"from_state": last, "to_state": "RUNNING",
                                "desired_power": "running", "at": inst["launched_at"]})  # fmt: skip
            last = "RUNNING"
        if inst["state"] != last:
            rows.append(base | {"from_state": last, "to_state": inst["state"],
                                "desired_power": inst["desired_power"],
                                "at": inst["updated_at"]})  # fmt: skip
    if rows:
        op.bulk_insert(events, rows)


def downgrade() -> None:
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_maintenance_windows_starts_at"))
        batch_op.drop_index(batch_op.f("ix_maintenance_windows_datacentre"))
    op.drop_table("maintenance_windows")
    with op.batch_alter_table("instance_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instance_events_at"))
        batch_op.drop_index(batch_op.f("ix_instance_events_org_path"))
        batch_op.drop_index("ix_instance_events_instance_at")
    op.drop_table("instance_events")
