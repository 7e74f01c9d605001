"""Evacuation of DOWN hosts: their instances are handed back to the scheduler.

:meth:`EvacuationRepo.evacuate_due` finds hosts that are DOWN, in a data centre whose
policy is ``restart-elsewhere``, and silent for longer than the agents' fencing lease
plus a margin (``domain/evacuation.py`` explains why that is safe). For each UNKNOWN
instance on such a host, one transaction (instance row locked, host claim released in
the usual lock order) turns it back to PENDING, off the host, with an ``evacuate``
action that finishes when the instance runs again. The pending loop then re-places it
through the scheduler like any request (quotas are still charged to it: nothing
changes there; server-group rules hold because the instance no longer counts on its old
host). A DELETING instance on such a host is finished (DELETED, claims released): its
agent deletes the stale domain when it returns, as it deletes every domain no longer
assigned to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from controlplane.domain.evacuation import EvacuationPolicy, EvacuationTiming
from controlplane.domain.host import HostState
from controlplane.domain.instance import InstanceState
from controlplane.domain.resources import Resources
from controlplane.store import quota
from controlplane.store.db import Database
from controlplane.store.placement import release
from controlplane.store.tables import DataCentreRow, HostRow, InstanceActionRow, InstanceRow

log = logging.getLogger(__name__)
S = InstanceState


@dataclass
class EvacuationReport:
    """Instances handed back to the scheduler, and deletions finished, by host name."""

    requeued: dict[str, list[str]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many instances changed."""
        return sum(len(v) for v in self.requeued.values()) + len(self.deleted)


def _resources(row: InstanceRow) -> Resources:
    return Resources(vcpus=row.vcpus, ram_mib=row.ram_mib, disk_gib=row.disk_gib)


class EvacuationRepo:
    """Moves instances off DOWN hosts in ``restart-elsewhere`` data centres."""

    def __init__(
        self, db: Database, clock: Callable[[], datetime], timing: EvacuationTiming
    ) -> None:
        self.db = db
        self.clock = clock
        self.timing = timing

    def lease_for(self, datacentre: str) -> float:
        """The fencing lease an agent in ``datacentre`` gets with each heartbeat ack."""
        with self.db.transaction() as session:
            policy = session.scalar(
                select(DataCentreRow.evacuation_policy).where(DataCentreRow.code == datacentre)
            )
        return self.timing.lease_for(EvacuationPolicy(policy or EvacuationPolicy.NONE))

    def evacuate_due(self) -> EvacuationReport:
        """Requeue the instances of every host that is due; returns what changed."""
        now = self.clock()
        report = EvacuationReport()
        with self.db.transaction() as session:
            hosts = list(
                session.execute(
                    select(HostRow.id, HostRow.name)
                    .join(DataCentreRow, DataCentreRow.code == HostRow.datacentre)
                    .where(
                        HostRow.state == HostState.DOWN.value,
                        HostRow.last_heartbeat < self.timing.evacuate_before(now),
                        DataCentreRow.evacuation_policy == EvacuationPolicy.RESTART_ELSEWHERE.value,
                    )
                    .order_by(HostRow.id)
                )
            )
            todo = {
                host_id: list(
                    session.scalars(
                        select(InstanceRow.id)
                        .where(
                            InstanceRow.host_id == host_id,
                            InstanceRow.state.in_((S.UNKNOWN.value, S.DELETING.value)),
                        )
                        .order_by(InstanceRow.created_at, InstanceRow.id)
                    )
                )
                for host_id, _ in hosts
            }
        for host_id, host_name in hosts:
            for instance_id in todo[host_id]:
                self._evacuate_one(instance_id, host_id, host_name, now, report)
        if report.count:
            log.warning(
                "evacuated %s; finished %d deletion(s)",
                ", ".join(f"{n}: {len(ids)} instance(s)" for n, ids in report.requeued.items()),
                len(report.deleted),
            )
        return report

    def _evacuate_one(
        self,
        instance_id: str,
        host_id: str,
        host_name: str,
        now: datetime,
        report: EvacuationReport,
    ) -> None:
        with self.db.transaction() as session:
            row = session.get(InstanceRow, instance_id, with_for_update=True)
            host = session.get(HostRow, host_id)
            # Re-check under the lock: the host may have come back meanwhile.
            if row is None or row.host_id != host_id or host is None:
                return
            if host.state != HostState.DOWN.value:
                return
            amount = _resources(row)
            if row.state == S.DELETING.value:
                quota.release(session, row.org_path, amount)
                release(session, host_id, amount)
                row.state, row.deleted_at, row.updated_at = S.DELETED.value, now, now
                row.host_id = None
                report.deleted.append(row.id)
                return
            if row.state != S.UNKNOWN.value:
                return
            release(session, host_id, amount)
            row.state, row.updated_at = S.PENDING.value, now
            row.host_id, row.datacentre = None, None
            row.pending_reason = (
                f"evacuating from host {host_name}, down since "
                f"{host.last_heartbeat:%Y-%m-%d %H:%M:%S}; waiting for a new host"
            )
            session.add(
                InstanceActionRow(
                    instance_id=row.id,
                    action="evacuate",
                    request_id="evacuation",
                    actor="evacuation",
                    started_at=now,
                    message=(
                        f"host {host_name} is down (last heartbeat "
                        f"{host.last_heartbeat:%Y-%m-%d %H:%M:%S}); restarting elsewhere "
                        "under the data centre's restart-elsewhere policy"
                    ),
                )
            )
            report.requeued.setdefault(host_name, []).append(row.id)
