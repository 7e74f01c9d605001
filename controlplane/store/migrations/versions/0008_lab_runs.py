"""Cloud Open Lab scenario runs: runs, the VMs they created, utilisation samples

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lab_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("trial_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("scenario", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("server_groups", sa.JSON(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=63), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("load_started_at", _TIME, nullable=True),
        sa.Column("load_ended_at", _TIME, nullable=True),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(["trial_id"], ["lab_trials.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_lab_runs_trial_id", "lab_runs", ["trial_id"], unique=False)
    op.create_index("ix_lab_runs_state", "lab_runs", ["state"], unique=False)
    op.create_table(
        "lab_run_instances",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("group_name", sa.String(length=63), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("requested_at", _TIME, nullable=False),
        sa.Column("running_at", _TIME, nullable=True),
        sa.Column("fault", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["lab_runs.id"]),
        sa.PrimaryKeyConstraint("instance_id"),
    )
    op.create_index("ix_lab_run_instances_run_id", "lab_run_instances", ["run_id"], unique=False)
    op.create_table(
        "lab_run_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("group_name", sa.String(length=63), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("ram", sa.Float(), nullable=False),
        sa.Column("disk", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["lab_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_lab_run_samples_run_id", "lab_run_samples", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_lab_run_samples_run_id", table_name="lab_run_samples")
    op.drop_table("lab_run_samples")
    op.drop_index("ix_lab_run_instances_run_id", table_name="lab_run_instances")
    op.drop_table("lab_run_instances")
    op.drop_index("ix_lab_runs_state", table_name="lab_runs")
    op.drop_index("ix_lab_runs_trial_id", table_name="lab_runs")
    op.drop_table("lab_runs")
