"""Read-only fleet statistics for the ``/metrics`` collectors (aggregated in SQL).

Owns the queries that Prometheus collectors run at scrape time: instance counts by state,
organisation and data centre, provisioning latencies (API accept -> first RUNNING) bucketed
in the database, the oldest PENDING request, host liveness and capacity rows, and failed
actions. Every figure is computed from the shared database, so all control-plane replicas
report the same numbers. No instance id leaves this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Float, case, cast, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from controlplane.store.db import Database
from controlplane.store.tables import HostRow, InstanceActionRow, InstanceRow


@dataclass(frozen=True)
class InstanceCount:
    """Live instances of one project path in one state and data centre."""

    org_path: str
    state: str
    #: Where it runs, else the data centre it asked for; "" when neither is known.
    datacentre: str
    count: int


@dataclass(frozen=True)
class LatencyBuckets:
    """Provisioning latencies of one project path and data centre, bucketed cumulatively."""

    org_path: str
    datacentre: str
    #: ``cumulative[i]``: how many took at most ``bounds[i]`` seconds.
    cumulative: tuple[int, ...]
    count: int
    total_seconds: float


@dataclass(frozen=True)
class PendingGroup:
    """PENDING instances per requested data centre ("" = any) and the oldest's age."""

    datacentre: str
    count: int
    oldest_created_at: datetime


@dataclass(frozen=True)
class HostStat:
    """One host's state, liveness and sizes (capacity, allocatable, allocated)."""

    name: str
    datacentre: str
    state: str
    #: Last heartbeat, or registration time if the agent never sent one.
    last_seen: datetime
    capacity: tuple[int, int, int]
    usable: tuple[int, int, int]
    used: tuple[int, int, int]


@dataclass(frozen=True)
class ActionFailures:
    """How many user actions of one kind ended in error (agent-reported failures)."""

    action: str
    count: int


class StatsRepo:
    """Aggregate reads over the whole fleet (no scoping: for operators' metrics only)."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def _seconds(
        self, start: ColumnElement[datetime], end: ColumnElement[datetime]
    ) -> ColumnElement[float]:
        if self.db.is_postgres:
            return cast(func.extract("epoch", end - start), Float)
        return (func.julianday(end) - func.julianday(start)) * literal(86400.0)

    def instance_counts(self) -> list[InstanceCount]:
        """Non-deleted instances grouped by project path, state and data centre."""
        dc = func.coalesce(InstanceRow.datacentre, InstanceRow.requested_datacentre, "")
        query = (
            select(InstanceRow.org_path, InstanceRow.state, dc, func.count())
            .where(InstanceRow.state != "DELETED")
            .group_by(InstanceRow.org_path, InstanceRow.state, dc)
        )
        with self.db.transaction() as session:
            return [InstanceCount(p, s, d, int(n)) for p, s, d, n in session.execute(query)]

    def provisioning_latency(self, bounds: Sequence[float]) -> list[LatencyBuckets]:
        """Accept -> first RUNNING of every instance that ever ran, deleted ones included
        (so the counts only grow, as a Prometheus histogram's must)."""
        seconds = self._seconds(InstanceRow.created_at, InstanceRow.launched_at)  # type: ignore[arg-type]
        dc = func.coalesce(InstanceRow.datacentre, "")
        columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in bounds]
        query = (
            select(InstanceRow.org_path, dc, func.count(), func.sum(seconds), *columns)
            .where(InstanceRow.launched_at.is_not(None))
            .group_by(InstanceRow.org_path, dc)
        )
        with self.db.transaction() as session:
            return [
                LatencyBuckets(
                    org_path=row[0],
                    datacentre=row[1],
                    count=int(row[2]),
                    total_seconds=float(row[3] or 0.0),
                    cumulative=tuple(int(n or 0) for n in row[4:]),
                )
                for row in session.execute(query)
            ]

    def pending(self) -> list[PendingGroup]:
        """PENDING instances per requested data centre with the oldest one's creation time."""
        dc = func.coalesce(InstanceRow.requested_datacentre, "")
        query = (
            select(dc, func.count(), func.min(InstanceRow.created_at))
            .where(InstanceRow.state == "PENDING")
            .group_by(dc)
        )
        with self.db.transaction() as session:
            rows = session.execute(query).all()
        return [PendingGroup(d, int(n), _aware(oldest)) for d, n, oldest in rows]

    def hosts(self) -> list[HostStat]:
        """Every enrolled host with its liveness and sizes."""
        with self.db.transaction() as session:
            rows = session.scalars(select(HostRow).order_by(HostRow.name)).all()
            return [
                HostStat(
                    name=r.name,
                    datacentre=r.datacentre,
                    state=r.state,
                    last_seen=r.last_heartbeat or r.created_at,
                    capacity=(r.vcpus, r.ram_mib, r.disk_gib),
                    usable=(r.usable_vcpus, r.usable_ram_mib, r.usable_disk_gib),
                    used=(r.used_vcpus, r.used_ram_mib, r.used_disk_gib),
                )
                for r in rows
            ]

    def action_failures(self) -> list[ActionFailures]:
        """Instance actions that ended in error, per action (the agent reported a failure)."""
        query = (
            select(InstanceActionRow.action, func.count())
            .where(InstanceActionRow.result == "error")
            .group_by(InstanceActionRow.action)
        )
        with self.db.transaction() as session:
            return [ActionFailures(a, int(n)) for a, n in session.execute(query)]


def _aware(value: datetime | str) -> datetime:
    """``min()`` over a UTC column comes back without the column's type on SQLite."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
