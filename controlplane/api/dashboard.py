"""What the built-in dashboard shows, gathered from the store for one signed-in user.

:func:`build` returns a :class:`Dashboard` view model; ``routes/dashboard.py`` renders it
with the Jinja2 templates in ``api/templates/``. Everything is scoped like the API: fleet
sections (capacity per data centre, hosts not active) appear only for those who may read
infrastructure (platform admins and root auditors); pending requests are limited to the
user's subtree.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel

from controlplane.domain.auth import Principal, require_infra_reader
from controlplane.domain.errors import Forbidden
from controlplane.domain.host import Host, HostState
from controlplane.domain.instance import InstanceState
from controlplane.domain.resources import DIMENSIONS, UNITS, Resources
from controlplane.store import Store

#: How many pending requests the page lists (the API lists them all).
PENDING_SHOWN = 50


class Utilisation(BaseModel):
    """One dimension of one data centre: allocated out of allocatable."""

    dimension: str
    unit: str
    used: int
    usable: int

    @property
    def percent(self) -> float:
        """Allocated share, 0..100 (0 when nothing is allocatable)."""
        return 100.0 * self.used / self.usable if self.usable else 0.0


class DataCentreCapacity(BaseModel):
    """Hosts and allocation of one data centre."""

    code: str
    hosts: int
    hosts_active: int
    dimensions: list[Utilisation]


class HostProblem(BaseModel):
    """A host that does not take placements, and since when it last reported."""

    name: str
    datacentre: str
    state: str
    last_heartbeat: datetime | None


class PendingRequest(BaseModel):
    """An instance waiting for a host, with the scheduler's reason."""

    id: str
    name: str
    project: str
    flavor: str
    waiting_since: datetime
    reason: str


class Dashboard(BaseModel):
    """Everything one page shows."""

    user: str
    role: str
    scope: str
    generated_at: datetime
    fleet_visible: bool
    capacity: list[DataCentreCapacity]
    host_problems: list[HostProblem]
    pending: list[PendingRequest]
    pending_total: int


def _capacity(hosts: list[Host]) -> list[DataCentreCapacity]:
    by_dc: dict[str, list[Host]] = defaultdict(list)
    for host in hosts:
        by_dc[host.datacentre].append(host)
    result = []
    for code in sorted(by_dc):
        members = by_dc[code]
        used = sum((h.used for h in members), Resources())
        total = sum((h.usable for h in members), Resources())
        result.append(
            DataCentreCapacity(
                code=code,
                hosts=len(members),
                hosts_active=sum(h.state is HostState.ACTIVE for h in members),
                dimensions=[
                    Utilisation(
                        dimension=d, unit=UNITS[d], used=getattr(used, d), usable=getattr(total, d)
                    )
                    for d in DIMENSIONS
                ],
            )
        )
    return result


def build(store: Store, who: Principal) -> Dashboard:
    """The dashboard as ``who`` may see it."""
    try:
        require_infra_reader(who)
        fleet_visible = True
    except Forbidden:
        fleet_visible = False
    hosts = store.hosts.list() if fleet_visible else []
    pending = store.instances.list(who.org_path, state=InstanceState.PENDING.value, limit=1000)
    return Dashboard(
        user=who.name,
        role=who.role.value,
        scope=who.org_path,
        generated_at=store.clock(),
        fleet_visible=fleet_visible,
        capacity=_capacity(hosts),
        host_problems=[
            HostProblem(
                name=h.name,
                datacentre=h.datacentre,
                state=h.state.value,
                last_heartbeat=h.last_heartbeat,
            )
            for h in sorted(hosts, key=lambda h: (h.datacentre, h.name))
            if h.state is not HostState.ACTIVE
        ],
        pending=[
            PendingRequest(
                id=i.id,
                name=i.name,
                project=i.project,
                flavor=i.flavor,
                waiting_since=i.created_at,
                reason=i.pending_reason or "",
            )
            for i in pending[:PENDING_SHOWN]
        ],
        pending_total=len(pending),
    )
