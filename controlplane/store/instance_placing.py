"""Committing a scheduler's plan (claims and group rules re-checked) and
anti-starvation: what creation and the pending retries share."""

from __future__ import annotations

import builtins
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.resources import Resources
from controlplane.domain.server_group import GroupPolicy
from controlplane.scheduler import HostView, PlacementRequest, Plan
from controlplane.scheduler.groups import violation
from controlplane.store.instance_base import Hints, InstanceBase, S, times
from controlplane.store.placement import PlacementConflict, claim
from controlplane.store.server_group import group_view, members_by_host
from controlplane.store.server_group import lock as lock_group
from controlplane.store.tables import (
    DataCentreRow,
    InstanceRow,
    ServerGroupRow,
)


@dataclass(frozen=True)
class Blocker:
    """A PENDING request that has waited too long and would fit once room frees: younger
    requests that compete for its data centre(s) are held back behind it."""

    instance_id: str
    name: str
    datacentre: str | None
    created_at: datetime

    def holds(self, datacentre: str | None, created_at: datetime | None) -> bool:
        """Whether a request for ``datacentre`` made at ``created_at`` (None: now) waits."""
        if created_at is not None and created_at <= self.created_at:
            return False
        return self.datacentre is None or datacentre is None or datacentre == self.datacentre

    def reason(self) -> str:
        """The pending reason of a held request."""
        where = f"data centre {self.datacentre}" if self.datacentre else "any data centre"
        return (
            f"held behind older request {self.name} ({self.instance_id}), waiting since "
            f"{self.created_at.isoformat()} for {where}, so it is not starved; "
            "will retry automatically"
        )


#: The oldest PENDING requests created before ``before`` (anti-starvation), built once.
_OLD_PENDING = (
    select(
        InstanceRow.id,
        InstanceRow.name,
        InstanceRow.requested_datacentre,
        InstanceRow.created_at,
        InstanceRow.placement,
    )
    .where(InstanceRow.state == S.PENDING.value, InstanceRow.created_at < bindparam("before"))
    .order_by(InstanceRow.created_at, InstanceRow.id)
    .limit(20)
)


class InstancePlacing(InstanceBase):
    """Build the scheduler's request, commit its plan, find requests that hold others."""

    def _request(
        self,
        session: Session,
        amount: Resources,
        datacentre: str | None,
        hints: Hints,
        group: ServerGroupRow | None,
        count: int,
    ) -> PlacementRequest:
        """The scheduler's request; the policy is the request's, else its data centre's,
        else the default."""
        policy = hints.policy
        if policy is None and datacentre is not None:
            stored = session.scalar(
                select(DataCentreRow.placement_policy).where(DataCentreRow.code == datacentre)
            )
            policy = PlacementPolicy(stored) if stored else None
        return PlacementRequest(
            resources=amount,
            datacentre=datacentre,
            required_traits=hints.required_traits,
            forbidden_traits=hints.forbidden_traits,
            count=count,
            policy=policy or self.default_policy,
            group=group_view(session, group) if group is not None else None,
        )

    def _claim(
        self,
        session: Session,
        plan: Plan,
        amount: Resources,
        group: ServerGroupRow | None,
        hints: Hints,
    ) -> builtins.list[HostView]:
        """Claim the plan's hosts; returns the claimed hosts' new rows. Raises
        PlacementConflict when a host no longer has room, is no longer eligible (state, data
        centre, traits: the snapshot may be older than the transaction), or a hard group
        rule would break given what concurrent requests committed meanwhile."""
        if group is not None:
            locked = lock_group(session, group.id)
            policy = GroupPolicy(locked.policy)
            if policy.hard:
                cap = (locked.max_per_host or 1) if policy is GroupPolicy.ANTI_AFFINITY else None
                problem = violation(
                    policy,
                    cap,
                    members_by_host(session, locked.id),
                    [p.host_id for p in plan.placements],
                )
                if problem is not None:
                    raise PlacementConflict(
                        f"server group {locked.name} changed since the snapshot: {problem}",
                        group=locked.id,
                    )
        per_host = Counter(p.host_id for p in plan.placements)
        claimed = []
        for host_id in sorted(per_host):  # host rows in ascending id order: no deadlocks
            host = claim(session, host_id, times(amount, per_host[host_id]))
            if not hints.required_traits <= host.traits or hints.forbidden_traits & host.traits:
                raise PlacementConflict(f"host {host.name} traits changed since the snapshot")
            claimed.append(host)
        return claimed

    # -- anti-starvation ------------------------------------------------------------------

    def _blockers(self, session: Session, now: datetime) -> builtins.list[Blocker]:
        """PENDING requests waiting longer than ``hold_after`` that would fit once room
        frees (their last explanation found hosts that were only full), oldest first."""
        if self.hold_after is None:
            return []
        rows = session.connection().execute(_OLD_PENDING, {"before": now - self.hold_after})
        return [
            Blocker(iid, name, dc, created)
            for iid, name, dc, created, placement in rows
            if placement and placement.get("fits_when_free", 0) > 0
        ]

    def _blocker(
        self,
        session: Session,
        now: datetime,
        datacentre: str | None,
        created_at: datetime | None,
        exclude: str | None = None,
    ) -> Blocker | None:
        for blocker in self._blockers(session, now):
            if blocker.instance_id != exclude and blocker.holds(datacentre, created_at):
                return blocker
        return None
