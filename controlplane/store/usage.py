"""Metering reads: the host-claim intervals of instances, for usage reports.

An instance's claim runs from ``scheduled_at`` (placement) to ``deleted_at`` (the host was
given back; NULL while it still holds it). Instances that were never placed have no
``scheduled_at`` and never count. A resize (``instance_resizes``) splits the claim where it
took effect: each part is an interval with the sizes the instance had then. Pricing and
clipping are pure (domain.metering).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import or_, select

from controlplane.domain.metering import Interval
from controlplane.store.db import Database, in_subtree
from controlplane.store.tables import InstanceResizeRow, InstanceRow


class UsageRepo:
    """Read claim intervals by organisation subtree and period."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def intervals(self, scope_path: str, start: datetime, end: datetime) -> list[Interval]:
        """Claims in ``scope_path``'s subtree that overlap ``[start, end)``, whether still
        held (``end`` None) or given back, ordered by org path, start and id; a resized
        claim comes as consecutive intervals, one per size it had."""
        row = InstanceRow
        overlapping = (
            in_subtree(row.org_path, scope_path),
            row.scheduled_at.is_not(None),
            row.scheduled_at < end,
            or_(row.deleted_at.is_(None), row.deleted_at > start),
        )
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
            .where(*overlapping)
            .order_by(row.org_path, row.scheduled_at, row.id)
        )
        resizes_query = (
            select(InstanceResizeRow)
            .join(row, row.id == InstanceResizeRow.instance_id)
            .where(*overlapping)
            .order_by(InstanceResizeRow.at, InstanceResizeRow.id)
        )
        out = []
        with self.db.transaction() as session:
            # Claims first: a resize committed after this read (PostgreSQL reads each
            # statement's own snapshot) then only adds a split between equal sizes.
            claims = session.execute(query).all()
            resizes: defaultdict[str, list[InstanceResizeRow]] = defaultdict(list)
            for resize in session.scalars(resizes_query):
                resizes[resize.instance_id].append(resize)
            for iid, path, vcpus, ram, disk, scheduled, deleted in claims:
                assert scheduled is not None  # filtered above
                begin = scheduled
                for resize in resizes[iid]:  # each ends the part at the old size
                    at = max(resize.at, begin)
                    out.append(
                        Interval(
                            instance_id=iid,
                            org_path=path,
                            vcpus=resize.old_vcpus,
                            ram_mib=resize.old_ram_mib,
                            disk_gib=resize.old_disk_gib,
                            start=begin,
                            end=at,
                        )
                    )
                    begin = at
                out.append(
                    Interval(
                        instance_id=iid,
                        org_path=path,
                        vcpus=vcpus,
                        ram_mib=ram,
                        disk_gib=disk,
                        start=begin,
                        end=deleted,
                    )
                )
        return out
