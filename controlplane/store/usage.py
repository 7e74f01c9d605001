"""Metering reads: the host-claim intervals of instances, for usage reports.

An instance's claim runs from ``scheduled_at`` (placement) to ``deleted_at`` (the host was
given back; NULL while it still holds it). Instances that were never placed have no
``scheduled_at`` and never count. Pricing and clipping are pure (domain.metering).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from controlplane.domain.metering import Interval
from controlplane.store.db import Database, in_subtree
from controlplane.store.tables import InstanceRow


class UsageRepo:
    """Read claim intervals by organisation subtree and period."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def intervals(self, scope_path: str, start: datetime, end: datetime) -> list[Interval]:
        """Claims in ``scope_path``'s subtree that overlap ``[start, end)``, whether still
        held (``end`` None) or given back, ordered by org path, start and id."""
        row = InstanceRow
        query = (
            select(
                row.id,
                row.org_path,
                row.vcpus,
                row.ram_mib,
                row.disk_gib,
                row.scheduled_at,
                row.deleted_at,
            )
            .where(
                in_subtree(row.org_path, scope_path),
                row.scheduled_at.is_not(None),
                row.scheduled_at < end,
                or_(row.deleted_at.is_(None), row.deleted_at > start),
            )
            .order_by(row.org_path, row.scheduled_at, row.id)
        )
        out = []
        with self.db.transaction() as session:
            for iid, path, vcpus, ram, disk, scheduled, deleted in session.execute(query):
                assert scheduled is not None  # filtered above
                out.append(
                    Interval(
                        instance_id=iid,
                        org_path=path,
                        vcpus=vcpus,
                        ram_mib=ram,
                        disk_gib=disk,
                        start=scheduled,
                        end=deleted,
                    )
                )
        return out
