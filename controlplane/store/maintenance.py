"""Maintenance windows: announced periods the SLA excludes (one data centre or one host)."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import uuid4

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controlplane.domain.errors import InvalidRequest, NotFound
from controlplane.domain.maintenance import MaintenanceScope, MaintenanceWindow, check_window
from controlplane.store.db import Database
from controlplane.store.tables import DataCentreRow, HostRow, MaintenanceWindowRow


def _model(row: MaintenanceWindowRow) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate(row, from_attributes=True)


def add_window(
    session: Session,
    *,
    datacentre: str,
    host: HostRow | None,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    actor: str,
    now: datetime,
) -> MaintenanceWindowRow:
    """Insert a checked window in ``session``'s transaction (for ``host``, else for every
    host of ``datacentre``), so a caller can make it part of a larger change."""
    row = MaintenanceWindowRow(
        id=str(uuid4()),
        scope=(MaintenanceScope.HOST if host else MaintenanceScope.DC).value,
        datacentre=datacentre,
        host_id=host.id if host else None,
        host_name=host.name if host else None,
        starts_at=starts_at.astimezone(UTC),
        ends_at=ends_at.astimezone(UTC),
        reason=reason,
        created_by=actor,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


class MaintenanceRepo:
    """Create, list and delete maintenance windows."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def create(
        self,
        *,
        datacentre: str | None,
        host: str | None,
        starts_at: datetime,
        ends_at: datetime,
        reason: str,
        actor: str,
    ) -> MaintenanceWindow:
        """A window for ``host`` (id or name) or for every host of ``datacentre``."""
        check_window(starts_at, ends_at)
        starts_at, ends_at = starts_at.astimezone(UTC), ends_at.astimezone(UTC)
        with self.db.transaction() as session:
            host_row = None
            if host is not None:
                host_row = session.scalar(
                    select(HostRow).where(or_(HostRow.id == host, HostRow.name == host))
                )
                if host_row is None:
                    raise NotFound("host", host)
                if datacentre is not None and datacentre != host_row.datacentre:
                    raise InvalidRequest(
                        f"host {host_row.name} is in data centre {host_row.datacentre}, not "
                        f"{datacentre}; leave out datacentre for a host window",
                        field="datacentre",
                        value=datacentre,
                    )
                datacentre = host_row.datacentre
            if datacentre is None:
                raise InvalidRequest(
                    "give the data centre (every host in it) or one host",
                    field="datacentre",
                    value=None,
                )
            if session.get(DataCentreRow, datacentre) is None:
                raise NotFound("dc", datacentre)
            row = add_window(
                session,
                datacentre=datacentre,
                host=host_row,
                starts_at=starts_at,
                ends_at=ends_at,
                reason=reason,
                actor=actor,
                now=self.clock(),
            )
            return _model(row)

    def get(self, window_id: str) -> MaintenanceWindow:
        """One window, else ``maintenance.not_found``."""
        with self.db.transaction() as session:
            row = session.get(MaintenanceWindowRow, window_id)
            if row is None:
                raise NotFound("maintenance", window_id)
            return _model(row)

    def list(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        datacentres: builtins.list[str] | None = None,
    ) -> builtins.list[MaintenanceWindow]:
        """Windows overlapping ``[start, end)`` (either bound optional), in the given data
        centres (None: all), by start."""
        query = select(MaintenanceWindowRow)
        if start is not None:
            query = query.where(MaintenanceWindowRow.ends_at > start)
        if end is not None:
            query = query.where(MaintenanceWindowRow.starts_at < end)
        if datacentres is not None:
            query = query.where(MaintenanceWindowRow.datacentre.in_(datacentres))
        with self.db.transaction() as session:
            rows = session.scalars(
                query.order_by(MaintenanceWindowRow.starts_at, MaintenanceWindowRow.id)
            )
            return [_model(r) for r in rows]

    def delete(self, window_id: str) -> MaintenanceWindow:
        """Withdraw a window (it no longer excludes anything); returns what was removed."""
        with self.db.transaction() as session:
            row = session.get(MaintenanceWindowRow, window_id)
            if row is None:
                raise NotFound("maintenance", window_id)
            found = _model(row)
            session.delete(row)
            return found
