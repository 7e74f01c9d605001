"""SLA reads: the state histories of the instances that lived in a period, and the data
centres and hosts they used (pure accounting is in :mod:`controlplane.sla`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from controlplane.sla.history import WANTED, InstanceHistory, StateEvent
from controlplane.store import history
from controlplane.store.db import Database, in_subtree
from controlplane.store.tables import HostRow, InstanceEventRow, InstanceRow


def _reconstructed(row: InstanceRow) -> list[StateEvent]:
    """A minimal history from the row alone (an instance with no recorded events)."""
    out = [StateEvent(row.created_at, "PENDING", WANTED, None, None)]
    if row.launched_at is not None:
        out.append(StateEvent(row.launched_at, "RUNNING", WANTED, row.host_id, row.datacentre))
    if row.state not in ("PENDING", "RUNNING"):
        out.append(
            StateEvent(row.updated_at, row.state, row.desired_power, row.host_id, row.datacentre)
        )
    return out


class SlaRepo:
    """Histories and names for SLA reports."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def histories(self, scope_path: str, start: datetime, end: datetime) -> list[InstanceHistory]:
        """Instances in ``scope_path``'s subtree that existed during ``[start, end)``, with
        their events up to ``end``, by org path and creation."""
        row = InstanceRow
        query = (
            select(row)
            .where(
                in_subtree(row.org_path, scope_path),
                row.created_at < end,
                or_(row.deleted_at.is_(None), row.deleted_at > start),
            )
            .order_by(row.org_path, row.created_at, row.id)
        )
        with self.db.transaction() as session:
            rows = list(session.scalars(query))
            recorded = history.events(session, [r.id for r in rows])
        out = []
        for r in rows:
            evs = [e for e in recorded.get(r.id, []) if e.at < end] or _reconstructed(r)
            out.append(InstanceHistory(r.id, r.name, r.org_path, r.created_at, tuple(evs)))
        return out

    def host_names(self) -> dict[str, str]:
        """Every host's id -> name."""
        with self.db.transaction() as session:
            rows = session.execute(select(HostRow.id, HostRow.name))
            return {row.id: row.name for row in rows}

    def datacentres_used(self, scope_path: str) -> list[str]:
        """Data centres any instance of ``scope_path``'s subtree has ever been in."""
        query = (
            select(InstanceEventRow.datacentre)
            .where(
                in_subtree(InstanceEventRow.org_path, scope_path),
                InstanceEventRow.datacentre.is_not(None),
            )
            .distinct()
        )
        current = (
            select(InstanceRow.datacentre)
            .where(
                in_subtree(InstanceRow.org_path, scope_path), InstanceRow.datacentre.is_not(None)
            )
            .distinct()
        )
        with self.db.transaction() as session:
            found = set(session.scalars(query)) | set(session.scalars(current))
        return sorted(d for d in found if d is not None)
