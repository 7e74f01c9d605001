"""Announced maintenance windows: periods the SLA excludes for one data centre or host.

A platform admin announces a window (``scope`` ``dc``: every host of the data centre;
``host``: one host) with its start, end and reason. Instance downtime inside a window that
covers the instance's host at that moment is neither downtime nor eligible time (see
``docs/sla.md``). The host-lifecycle work may create windows when it puts a host into
maintenance; the model does not care who created one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from controlplane.domain.errors import InvalidRequest
from controlplane.domain.names import Code

#: The longest window one announcement may cover.
MAX_WINDOW = timedelta(days=14)


class MaintenanceScope(StrEnum):
    """What a window covers."""

    DC = "dc"
    HOST = "host"


class MaintenanceWindow(BaseModel):
    """One announced window ``[starts_at, ends_at)``."""

    id: str
    scope: MaintenanceScope
    datacentre: Code
    host_id: str | None = None
    host_name: str | None = None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime

    def covers(self, host_id: str | None, datacentre: str | None) -> bool:
        """Whether an instance on ``host_id`` in ``datacentre`` is inside this window's scope."""
        if self.scope is MaintenanceScope.HOST:
            return host_id is not None and host_id == self.host_id
        return datacentre is not None and datacentre == self.datacentre


def check_window(starts_at: datetime, ends_at: datetime) -> None:
    """Refuse an empty, reversed or over-long window (naming the field, limit and value)."""
    if ends_at <= starts_at:
        raise InvalidRequest(
            f"ends_at ({ends_at.isoformat()}) must be after starts_at ({starts_at.isoformat()})",
            field="ends_at",
            limit=starts_at.isoformat(),
            value=ends_at.isoformat(),
        )
    if ends_at - starts_at > MAX_WINDOW:
        hours = (ends_at - starts_at) / timedelta(hours=1)
        raise InvalidRequest(
            f"a maintenance window may last at most {MAX_WINDOW.days} days; this one lasts "
            f"{hours:g} hours. Announce several windows instead",
            field="ends_at",
            limit=f"{MAX_WINDOW.days} days",
            value=ends_at.isoformat(),
        )
