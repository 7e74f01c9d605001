"""Evacuation of DOWN hosts: their instances are handed back to the scheduler.

:meth:`EvacuationRepo.evacuate_due` finds hosts that are DOWN and silent for longer than
the agents' fencing lease plus a margin (``domain/evacuation.py`` explains why that is
safe). Each UNKNOWN instance on such a host is governed by its ministry's override, else
by the host's data centre's policy (:func:`~controlplane.domain.evacuation.applied_policy`);
under ``restart-elsewhere``, one transaction (instance row locked, host claim released in
the usual lock order) turns it back to PENDING, off the host, with an ``evacuate``
action that finishes when the instance runs again and says which policy applied and where
it came from. Under ``none`` the instance stays UNKNOWN. The pending loop then re-places it
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
from sqlalchemy.orm import Session

from controlplane.domain.evacuation import (
    AppliedPolicy,
    EvacuationPolicy,
    EvacuationTiming,
    applied_policy,
    ministry_of,
)
from controlplane.domain.host import HostState
from controlplane.domain.instance import InstanceState
from controlplane.domain.resources import Resources
from controlplane.store import quota
from controlplane.store.db import Database
from controlplane.store.placement import release
from controlplane.store.tables import (
    DataCentreRow,
    HostRow,
    InstanceActionRow,
    InstanceRow,
    OrganisationRow,
)

log = logging.getLogger(__name__)
S = InstanceState


@dataclass
class EvacuationReport:
    """Instances handed back to the scheduler, and deletions finished, by host name."""

    requeued: dict[str, list[str]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    #: Instances left UNKNOWN on a due host because their policy is ``none``.
    kept: list[str] = field(default_factory=list)

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
        """The fencing lease an agent in ``datacentre`` gets with each heartbeat ack: the
        data centre's policy, or any ministry forcing ``restart-elsewhere``, needs one."""
        forced = (
            select(OrganisationRow.code)
            .where(OrganisationRow.evacuation_policy == EvacuationPolicy.RESTART_ELSEWHERE.value)
            .exists()
        )
        with self.db.transaction() as session:  # one round trip: it runs on every heartbeat
            row = session.execute(
                select(DataCentreRow.evacuation_policy, forced).where(
                    DataCentreRow.code == datacentre
                )
            ).first()
        policy, overrides = (row[0], bool(row[1])) if row is not None else (None, False)
        return self.timing.lease_for(
            EvacuationPolicy(policy or EvacuationPolicy.NONE), ministry_overrides=overrides
        )

    def evacuate_due(self) -> EvacuationReport:
        """Requeue the instances of every host that is due; returns what changed."""
        now = self.clock()
        report = EvacuationReport()
        with self.db.transaction() as session:
            hosts = list(
                session.execute(
                    select(
                        HostRow.id,
                        HostRow.name,
                        HostRow.datacentre,
                        DataCentreRow.evacuation_policy,
                    )
                    .join(DataCentreRow, DataCentreRow.code == HostRow.datacentre)
                    .where(
                        HostRow.state == HostState.DOWN.value,
                        HostRow.last_heartbeat < self.timing.evacuate_before(now),
                    )
                    .order_by(HostRow.id)
                )
            )
            todo = {
                host_id: list(
                    session.execute(
                        select(InstanceRow.id, InstanceRow.org_path)
                        .where(
                            InstanceRow.host_id == host_id,
                            InstanceRow.state.in_((S.UNKNOWN.value, S.DELETING.value)),
                        )
                        .order_by(InstanceRow.created_at, InstanceRow.id)
                    )
                )
                for host_id, *_ in hosts
            }
            overrides = self._overrides(session) if any(todo.values()) else {}
        for host_id, host_name, datacentre, dc_policy in hosts:
            for instance_id, org_path in todo[host_id]:
                ministry = ministry_of(org_path)
                applied = applied_policy(
                    datacentre,
                    EvacuationPolicy(dc_policy or EvacuationPolicy.NONE),
                    ministry,
                    overrides.get(ministry) if ministry else None,
                )
                if applied.policy is not EvacuationPolicy.RESTART_ELSEWHERE:
                    report.kept.append(instance_id)
                    continue
                self._evacuate_one(instance_id, host_id, host_name, applied, now, report)
        if report.count:
            log.warning(
                "evacuated %s; finished %d deletion(s)",
                ", ".join(f"{n}: {len(ids)} instance(s)" for n, ids in report.requeued.items()),
                len(report.deleted),
            )
        return report

    @staticmethod
    def _overrides(session: Session) -> dict[str, EvacuationPolicy]:
        """Every ministry's override (ministries that inherit are absent)."""
        rows = session.execute(
            select(OrganisationRow.code, OrganisationRow.evacuation_policy).where(
                OrganisationRow.evacuation_policy.is_not(None)
            )
        )
        return {code: EvacuationPolicy(policy) for code, policy in rows if policy}

    def _evacuate_one(
        self,
        instance_id: str,
        host_id: str,
        host_name: str,
        applied: AppliedPolicy,
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
                        f"under {applied.describe()}"
                    ),
                )
            )
            report.requeued.setdefault(host_name, []).append(row.id)
