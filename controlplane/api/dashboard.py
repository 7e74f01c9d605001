"""What the built-in dashboard shows, gathered from the store for one signed-in user.

:func:`build` returns a :class:`Dashboard` view model; ``routes/dashboard.py`` renders it
with the Jinja2 templates in ``api/templates/``. Everything is scoped like the API: fleet
sections (capacity per data centre, hosts down or not active, with their heartbeat age)
appear only for those who may read infrastructure (platform admins and root auditors);
pending requests are limited to the user's subtree; SLA attainment and the month's
host-failure incidents follow the rules of ``GET /v1/sla/report`` (every ministry for
root-scoped admins and auditors, their own ministry for ministry admins and auditors, a
note for everyone else): both use :mod:`controlplane.api.sla_report`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel

from controlplane.api.sla_report import sla_report, sla_scope
from controlplane.domain.auth import Principal, require_infra_reader
from controlplane.domain.errors import Forbidden, GovcloudError
from controlplane.domain.host import Host, HostState
from controlplane.domain.instance import InstanceState
from controlplane.domain.metering import Month
from controlplane.domain.resources import DIMENSIONS, UNITS, Resources
from controlplane.schemas.sla import MinistrySla
from controlplane.sla.targets import SlaTargets
from controlplane.store import Store

#: How many pending requests the page lists (the API lists them all).
PENDING_SHOWN = 50
#: How many of the month's incidents the page lists, newest first.
INCIDENTS_SHOWN = 20
#: How many affected instances an incident names (the rest are counted).
NAMES_SHOWN = 5
#: Host states listed first, the worst first (any other state follows, by name).
_SEVERITY = {HostState.DOWN: 0, HostState.SUSPECT: 1}
#: Longer ``?month=`` values are refused without being echoed whole.
MONTH_TEXT_MAX = 16


def duration_text(value: timedelta) -> str:
    """A short human duration: ``45 s``, ``3 min 12 s``, ``2 h 5 min``, ``3 d 4 h``."""
    seconds = max(0, int(value.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    mins, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    if mins:
        return f"{mins} min {secs} s"
    return f"{secs} s"


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
    #: How long ago the last heartbeat arrived (None: never).
    heartbeat_age: timedelta | None = None

    @property
    def failed(self) -> bool:
        """Set by the liveness loop (SUSPECT or DOWN), not by an operator."""
        return self.state in (HostState.SUSPECT.value, HostState.DOWN.value)

    @property
    def age_text(self) -> str:
        """The heartbeat age for people: ``3 min 12 s ago`` or ``never``."""
        return "never" if self.heartbeat_age is None else f"{duration_text(self.heartbeat_age)} ago"


class PendingRequest(BaseModel):
    """An instance waiting for a host, with the scheduler's reason."""

    id: str
    name: str
    project: str
    flavor: str
    waiting_since: datetime
    reason: str


class RecentIncident(BaseModel):
    """A host failure: when, where, whom it hit and how long recovery took."""

    id: str
    host: str
    datacentre: str | None
    start: datetime
    #: None while it is still going on.
    end: datetime | None
    instances: int
    instance_names: list[str]
    ministries: list[str]
    time_to_recover: timedelta

    @property
    def recovery_text(self) -> str:
        """``45 min 0 s``, or ``ongoing, 12 min 0 s so far``."""
        text = duration_text(self.time_to_recover)
        return text if self.end is not None else f"ongoing, {text} so far"


class SlaView(BaseModel):
    """SLA attainment per ministry and the incidents of one month, as far as the user may
    see them (``visible`` False: ``note`` says why)."""

    month: str
    previous_month: str
    next_month: str
    #: A bad ``?month=`` value, said plainly (the page is then answered with 400).
    error: str = ""
    visible: bool = False
    note: str = ""
    complete: bool = False
    #: False for a month still to come (nothing to count yet).
    started: bool = True
    as_of: datetime | None = None
    ministry_names: dict[str, str] = {}
    ministries: list[MinistrySla] = []
    incidents: list[RecentIncident] = []
    incidents_total: int = 0


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
    sla: SlaView


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


def _sla(
    store: Store,
    who: Principal,
    now: datetime,
    month_text: str | None,
    targets: Callable[[], SlaTargets],
) -> SlaView:
    current = Month.of(now)
    try:
        if month_text is not None and len(month_text) > MONTH_TEXT_MAX:
            raise ValueError(
                f"month must be YYYY-MM, e.g. 2026-11; got {month_text[:MONTH_TEXT_MAX]!r}... "
                f"({len(month_text)} characters)"
            )
        month = current if month_text is None else Month.parse(month_text)
        month.end  # noqa: B018 - raises for the last month Month supports (no next month)
    except ValueError as exc:
        return SlaView(
            month=str(current),
            previous_month=_previous(current),
            next_month=_next(current),
            error=f"{exc}. Pick a month with the selector, or give ?month=YYYY-MM.",
        )
    view = SlaView(month=str(month), previous_month=_previous(month), next_month=_next(month))
    try:
        scope = sla_scope(store, who)
    except Forbidden as exc:
        view.note = exc.message + "."
        return view
    try:
        chosen = targets()
    except GovcloudError as exc:
        view.note = f"SLA targets cannot be read: {exc.message}"
        return view
    report, histories = sla_report(store, scope, month, now, chosen)
    names = {h.instance_id: h.name for h in histories}
    recent = sorted(report.incidents, key=lambda i: (i.start, i.id), reverse=True)
    view.visible = True
    view.complete = report.complete
    view.started = now >= month.start
    view.as_of = report.as_of
    view.ministry_names = dict(scope.ministries)
    view.ministries = report.ministries
    view.incidents_total = len(recent)
    view.incidents = [
        RecentIncident(
            id=i.id,
            host=i.host_name or i.host_id,
            datacentre=i.datacentre,
            start=i.start,
            end=None if i.ongoing else i.end,
            instances=len(i.instances),
            instance_names=sorted(names.get(x, x) for x in i.instances)[:NAMES_SHOWN],
            ministries=i.ministries,
            time_to_recover=i.end - i.start,
        )
        for i in recent[:INCIDENTS_SHOWN]
    ]
    return view


def _previous(month: Month) -> str:
    """The month before (the month itself at the first supported one)."""
    try:
        before = (
            Month(month.year - 1, 12) if month.month == 1 else Month(month.year, month.month - 1)
        )
    except ValueError:
        return str(month)
    return str(before)


def _next(month: Month) -> str:
    """The month after (the month itself at the last supported one)."""
    try:
        return str(month.next())
    except ValueError:
        return str(month)


def build(
    store: Store,
    who: Principal,
    *,
    targets: Callable[[], SlaTargets],
    month: str | None = None,
) -> Dashboard:
    """The dashboard as ``who`` may see it; SLA figures for ``month`` (``YYYY-MM``, default
    the current one) against the service classes ``targets()`` returns."""
    now = store.clock()
    try:
        require_infra_reader(who)
        fleet_visible = True
    except Forbidden:
        fleet_visible = False
    hosts = store.hosts.list() if fleet_visible else []
    pending = store.instances.list(who.org_path, state=InstanceState.PENDING.value, limit=1000)
    problems = sorted(
        (h for h in hosts if h.state is not HostState.ACTIVE),
        key=lambda h: (_SEVERITY.get(h.state, 2), h.datacentre, h.name),
    )
    return Dashboard(
        user=who.name,
        role=who.role.value,
        scope=who.org_path,
        generated_at=now,
        fleet_visible=fleet_visible,
        capacity=_capacity(hosts),
        host_problems=[
            HostProblem(
                name=h.name,
                datacentre=h.datacentre,
                state=h.state.value,
                last_heartbeat=h.last_heartbeat,
                heartbeat_age=None if h.last_heartbeat is None else now - h.last_heartbeat,
            )
            for h in problems
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
        sla=_sla(store, who, now, month, targets),
    )
