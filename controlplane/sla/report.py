"""The monthly SLA report: per-instance accounting aggregated per project, agency and
ministry, measured against each ministry's service class.

:func:`build_report` is pure: the API hands it the histories of the instances that lived
in the month, the maintenance windows, the targets, the host names and the clock.
Figures are summed exactly (``timedelta``) and rounded once, when reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from controlplane.domain.maintenance import MaintenanceWindow
from controlplane.domain.metering import Month, metered_until
from controlplane.domain.org import within
from controlplane.schemas.sla import (
    Availability,
    Breach,
    ErrorBudget,
    Incident,
    InstanceAvailability,
    MinistrySla,
    OrgAvailability,
    ProvisioningFigures,
    SlaReport,
    SlaTarget,
)
from controlplane.sla.availability import ZERO, Accounting, account, availability
from controlplane.sla.history import InstanceHistory
from controlplane.sla.incidents import HostIncident, group
from controlplane.sla.provisioning import Outcome, accepted_in, percentile
from controlplane.sla.targets import SlaTargets

#: How many instances ``worst_instances`` lists per ministry.
WORST = 5
_MINUTE = timedelta(minutes=1)
_US = timedelta(microseconds=1)
_KINDS = {3: "agency", 4: "project"}

DEFINITION = (
    "Monthly availability = 100 x (1 - downtime / counted minutes). Counted minutes are "
    "those of the month in which the instance existed, had reached RUNNING since its tenant "
    "last asked for it to run, its tenant wanted it running and it was not being deleted, "
    "minus announced maintenance windows covering its host or data centre. Downtime is "
    "counted minutes in any state other than RUNNING. Tenant-initiated stops, starts and "
    "deletions never count. Provisioning time runs from the API accepting a create to the "
    "instance's first RUNNING; a create that went to ERROR first is a failed provisioning."
)


@dataclass(frozen=True)
class ReportInput:
    """Everything a report is computed from."""

    month: Month
    now: datetime
    #: A ministry code, or "all".
    scope: str
    #: The ministries reported on (each gets a line, even without instances).
    ministries: Sequence[str]
    histories: Sequence[InstanceHistory]
    windows: Sequence[MaintenanceWindow]
    targets: SlaTargets
    host_names: Mapping[str, str]


def minutes(value: timedelta) -> float:
    """A duration in minutes, to 3 decimals."""
    return round(value / _MINUTE, 3)


def percent(value: Fraction | None) -> float | None:
    """A fraction as a percentage, to 4 decimals."""
    return None if value is None else round(float(value * 100), 4)


def _figures(items: Iterable[Accounting]) -> tuple[timedelta, timedelta, timedelta]:
    eligible = excluded = downtime = ZERO
    for item in items:
        eligible += item.eligible
        excluded += item.excluded
        downtime += item.downtime
    return eligible, excluded, downtime


def _availability(items: Iterable[Accounting]) -> Availability:
    eligible, excluded, downtime = _figures(items)
    return Availability(
        eligible_minutes=minutes(eligible),
        excluded_minutes=minutes(excluded),
        downtime_minutes=minutes(downtime),
        availability_pct=percent(availability(eligible - excluded, downtime)),
    )


def _meets(value: Fraction | None, target_pct: float) -> bool | None:
    return None if value is None else value * 100 >= Fraction(str(target_pct))


def incident_id(incident: HostIncident, host_names: Mapping[str, str]) -> str:
    """A readable, stable id: the host and the minute the incident began."""
    host = host_names.get(incident.host_id, incident.host_id[:8])
    return f"{host}@{incident.start:%Y-%m-%dT%H:%MZ}"


def _incident(
    incident: HostIncident, host_names: Mapping[str, str], ministry_of: Mapping[str, str]
) -> Incident:
    ids = incident.instance_ids
    return Incident(
        id=incident_id(incident, host_names),
        host_id=incident.host_id,
        host_name=host_names.get(incident.host_id),
        datacentre=incident.datacentre,
        start=incident.start,
        end=incident.end,
        ongoing=incident.ongoing,
        time_to_recover_minutes=minutes(incident.time_to_recover),
        downtime_minutes=minutes(incident.downtime),
        instances=ids,
        ministries=sorted({ministry_of[i] for i in ids}),
    )


def _provisioning(
    histories: Sequence[InstanceHistory], inp: ReportInput, target: float
) -> ProvisioningFigures:
    hi = metered_until(inp.month, inp.now)
    found = accepted_in(histories, inp.month.start, hi)
    times = [p.duration for p in found if p.duration is not None]

    def pct(q: float) -> float | None:
        value = percentile(times, q)
        return None if value is None else minutes(value)

    p95 = pct(95)
    count = {o: sum(p.outcome is o for p in found) for o in Outcome}
    return ProvisioningFigures(
        accepted=len(found),
        launched=count[Outcome.LAUNCHED],
        failed=count[Outcome.FAILED],
        cancelled=count[Outcome.CANCELLED],
        in_progress=count[Outcome.IN_PROGRESS],
        p50_minutes=pct(50),
        p95_minutes=p95,
        p99_minutes=pct(99),
        max_minutes=pct(100),
        attained=None if p95 is None else p95 <= target,
    )


def _orgs(
    histories: Sequence[InstanceHistory], acc: Mapping[str, Accounting]
) -> list[OrgAvailability]:
    paths: set[str] = set()
    for h in histories:
        parts = h.org_path.split("/")
        paths.update("/".join(parts[:n]) for n in (3, 4) if len(parts) >= n)
    lines = []
    for path in sorted(paths):
        members = [acc[h.instance_id] for h in histories if within(h.org_path, path)]
        figures = _availability(members)
        lines.append(
            OrgAvailability(
                org=path.rsplit("/", 1)[-1],
                kind=_KINDS.get(path.count("/") + 1, "org"),
                path=path,
                instances=sum(a.eligible > ZERO for a in members),
                **figures.model_dump(),
            )
        )
    return lines


def _worst(
    histories: Sequence[InstanceHistory], acc: Mapping[str, Accounting], target: float
) -> list[InstanceAvailability]:
    hit = [h for h in histories if acc[h.instance_id].downtime > ZERO]
    hit.sort(key=lambda h: (-acc[h.instance_id].downtime, h.name, h.instance_id))
    out = []
    for h in hit[:WORST]:
        a = acc[h.instance_id]
        out.append(
            InstanceAvailability(
                instance_id=h.instance_id,
                name=h.name,
                project=h.org_path.rsplit("/", 1)[-1],
                org_path=h.org_path,
                outages=len(a.outages),
                meets_target=_meets(a.availability, target),
                **_availability([a]).model_dump(),
            )
        )
    return out


def _ministry(
    ministry: str,
    histories: Sequence[InstanceHistory],
    acc: Mapping[str, Accounting],
    incidents: Sequence[Incident],
    inp: ReportInput,
) -> MinistrySla:
    name, cls = inp.targets.class_of(ministry)
    mine = [acc[h.instance_id] for h in histories]
    eligible, excluded, downtime = _figures(mine)
    counted = eligible - excluded
    value = availability(counted, downtime)
    figures = _availability(mine)
    attained = _meets(value, cls.availability_pct)
    share = 1 - Fraction(str(cls.availability_pct)) / 100
    allowed_exact = timedelta(microseconds=round(counted // _US * share))
    remaining = allowed_exact - downtime
    budget = ErrorBudget(
        allowed_minutes=minutes(allowed_exact),
        used_minutes=minutes(downtime),
        remaining_minutes=minutes(remaining),
        remaining_pct=None if allowed_exact <= ZERO else round(remaining / allowed_exact * 100, 2),
    )
    provisioning = _provisioning(histories, inp, cls.provisioning_p95_minutes)
    involved = [i.id for i in incidents if ministry in i.ministries]
    breaches = []
    if attained is False:
        breaches.append(
            Breach(
                kind="availability",
                message=(
                    f"{ministry}: availability {figures.availability_pct:.4f} % is below the "
                    f"{name} target of {cls.availability_pct:g} % ({budget.used_minutes:g} "
                    f"minutes down, {budget.allowed_minutes:g} allowed)"
                ),
                target=cls.availability_pct,
                actual=figures.availability_pct or 0.0,
                incidents=involved,
            )
        )
    if provisioning.attained is False and provisioning.p95_minutes is not None:
        breaches.append(
            Breach(
                kind="provisioning",
                message=(
                    f"{ministry}: 95 % of launches took up to {provisioning.p95_minutes:g} "
                    f"minutes; the {name} target is {cls.provisioning_p95_minutes:g} minutes"
                ),
                target=cls.provisioning_p95_minutes,
                actual=provisioning.p95_minutes,
                incidents=[],
            )
        )
    return MinistrySla(
        ministry=ministry,
        target=SlaTarget(
            service_class=name,
            description=cls.description,
            availability_pct=cls.availability_pct,
            provisioning_p95_minutes=cls.provisioning_p95_minutes,
        ),
        instances=sum(a.eligible > ZERO for a in mine),
        availability=figures,
        attained=attained,
        error_budget=budget,
        provisioning=provisioning,
        breaches=breaches,
        incidents=involved,
        orgs=_orgs(histories, acc),
        worst_instances=_worst(histories, acc, cls.availability_pct),
    )


def build_report(inp: ReportInput) -> SlaReport:
    """The SLA report for ``inp.month`` as of ``inp.now``."""
    lo, hi = inp.month.start, metered_until(inp.month, inp.now)
    histories = [h for h in inp.histories if h.ministry in inp.ministries]
    acc = {h.instance_id: account(h, lo, hi, inp.windows) for h in histories}
    ministry_of = {h.instance_id: h.ministry for h in histories}
    incidents = [
        _incident(i, inp.host_names, ministry_of)
        for i in group(o for a in acc.values() for o in a.outages)
    ]
    lines = [
        _ministry(m, [h for h in histories if h.ministry == m], acc, incidents, inp)
        for m in sorted(inp.ministries)
    ]
    return SlaReport(
        month=str(inp.month),
        scope=inp.scope,
        start=inp.month.start,
        end=inp.month.end,
        as_of=hi,
        complete=hi == inp.month.end,
        definition=DEFINITION,
        total=_availability(acc.values()),
        attained=sum(line.attained is True for line in lines),
        breached=sum(bool(line.breaches) for line in lines),
        ministries=lines,
        incidents=incidents,
    )
