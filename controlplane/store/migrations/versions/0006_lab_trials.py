"""Cloud Open Lab: vendors, trials, their events, evidence, sign-offs and extensions

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lab_vendors",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("org_path", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=63), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(["code"], ["organisations.code"]),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "lab_trials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column("vendor_path", sa.String(length=200), nullable=False),
        sa.Column("ministry", sa.String(length=32), nullable=False),
        sa.Column("ministry_path", sa.String(length=200), nullable=False),
        sa.Column("offering", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("template", sa.String(length=63), nullable=False),
        sa.Column("ttl_hours", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("project_path", sa.String(length=200), nullable=True),
        sa.Column("requested_by", sa.String(length=63), nullable=False),
        sa.Column("requested_at", _TIME, nullable=False),
        sa.Column("decided_by", sa.String(length=63), nullable=True),
        sa.Column("decided_at", _TIME, nullable=True),
        sa.Column("activated_at", _TIME, nullable=True),
        sa.Column("ends_at", _TIME, nullable=True),
        sa.Column("expired_at", _TIME, nullable=True),
        sa.Column("cleaned_at", _TIME, nullable=True),
        sa.Column("warned", sa.JSON(), nullable=False),
        sa.Column("certified_at", _TIME, nullable=True),
        sa.Column("certified_by", sa.String(length=63), nullable=True),
        sa.Column("final_usage", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["vendor"], ["lab_vendors.code"]),
        sa.ForeignKeyConstraint(["ministry"], ["organisations.code"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("vendor", "name", name="uq_lab_trials_vendor_name"),
    )
    for column in ("vendor", "ministry", "state", "stage"):
        op.create_index(f"ix_lab_trials_{column}", "lab_trials", [column], unique=False)
    op.create_table(
        "lab_trial_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trial_id", sa.String(length=32), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=63), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["trial_id"], ["lab_trials.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "lab_evidence",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trial_id", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("uri", sa.String(length=1024), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("added_by", sa.String(length=63), nullable=False),
        sa.Column("added_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(["trial_id"], ["lab_trials.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trial_id", "stage", "sha256", name="uq_lab_evidence_trial_stage_sha"),
    )
    op.create_table(
        "lab_signoffs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trial_id", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("signed_by", sa.String(length=63), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("comment", sa.String(length=200), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["trial_id"], ["lab_trials.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "lab_extensions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trial_id", sa.String(length=32), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=63), nullable=False),
        sa.Column("requested_at", _TIME, nullable=False),
        sa.Column("decided_by", sa.String(length=63), nullable=True),
        sa.Column("decided_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(["trial_id"], ["lab_trials.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for table in ("lab_trial_events", "lab_evidence", "lab_signoffs", "lab_extensions"):
        op.create_index(f"ix_{table}_trial_id", table, ["trial_id"], unique=False)


def downgrade() -> None:
    for table in ("lab_extensions", "lab_signoffs", "lab_evidence", "lab_trial_events"):
        op.drop_index(f"ix_{table}_trial_id", table_name=table)
        op.drop_table(table)
    for column in ("stage", "state", "ministry", "vendor"):
        op.drop_index(f"ix_lab_trials_{column}", table_name="lab_trials")
    op.drop_table("lab_trials")
    op.drop_table("lab_vendors")
