"""SLA report (``GET /v1/sla/report``) and maintenance window requests.

Times are minutes (3 decimals), availability a percentage (4 decimals); a figure that
cannot be computed (nothing eligible, no launch) is ``null`` rather than a made-up 100.
The definition behind the figures is :mod:`controlplane.sla.availability` and
``docs/sla.md``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from controlplane.domain.names import Code
from controlplane.schemas.common import Strict

#: Why the window is needed, shown to tenants: 1-200 characters, no control characters.
Reason = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")
]


class MaintenanceWindowCreate(Strict):
    """Announce a window for a data centre, or for one host (its data centre is implied)."""

    datacentre: Code | None = Field(None, description="every host of this data centre")
    host: str | None = Field(None, description="one host, by id or name", max_length=63)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Reason


class SlaTarget(BaseModel):
    """What a ministry's service class promises."""

    service_class: str
    description: str = ""
    availability_pct: float
    provisioning_p95_minutes: float


class Availability(BaseModel):
    """Eligible, excluded and down minutes, and the availability they give."""

    eligible_minutes: float = Field(description="the tenant wanted it running, after launch")
    excluded_minutes: float = Field(description="inside announced maintenance windows")
    downtime_minutes: float = Field(description="eligible, not excluded, and not RUNNING")
    availability_pct: float | None = Field(
        description="100 x (1 - downtime / (eligible - excluded)); null if nothing counted"
    )


class ErrorBudget(BaseModel):
    """Downtime the target allows this month, and what is left of it."""

    allowed_minutes: float
    used_minutes: float
    remaining_minutes: float = Field(description="negative once the budget is overspent")
    remaining_pct: float | None = Field(description="of the allowed minutes; null if none")


class ProvisioningFigures(BaseModel):
    """Creates accepted in the month and how long they took to first run."""

    accepted: int
    launched: int
    failed: int = Field(description="went to ERROR before ever running")
    cancelled: int = Field(description="deleted by the tenant before running")
    in_progress: int
    p50_minutes: float | None
    p95_minutes: float | None
    p99_minutes: float | None
    max_minutes: float | None
    attained: bool | None = Field(description="p95 within the target; null with no launch")


class OrgAvailability(Availability):
    """An agency's or a project's figures."""

    org: str
    kind: str
    path: str
    instances: int


class InstanceAvailability(Availability):
    """One instance's figures."""

    instance_id: str
    name: str
    project: str
    org_path: str
    outages: int
    meets_target: bool | None


class Incident(BaseModel):
    """Simultaneous downtime on one host, with the instances it hit."""

    id: str
    host_id: str
    host_name: str | None
    datacentre: str | None
    start: datetime
    end: datetime
    ongoing: bool = Field(description="still down when the reported period ended")
    time_to_recover_minutes: float
    downtime_minutes: float = Field(description="summed over the instances affected")
    instances: list[str]
    ministries: list[str]


class Breach(BaseModel):
    """A target missed, and the incidents behind it."""

    kind: str = Field(description="availability | provisioning")
    message: str
    target: float
    actual: float
    incidents: list[str] = Field(description="ids of the incidents that caused it")


class MinistrySla(BaseModel):
    """One ministry's month against its target."""

    ministry: str
    target: SlaTarget
    instances: int
    availability: Availability
    attained: bool | None = Field(description="availability met the target; null if no data")
    error_budget: ErrorBudget
    provisioning: ProvisioningFigures
    breaches: list[Breach]
    incidents: list[str] = Field(description="ids of incidents that hit this ministry")
    orgs: list[OrgAvailability] = Field(description="agencies and projects, in org order")
    worst_instances: list[InstanceAvailability] = Field(description="most downtime first")


class SlaReport(BaseModel):
    """The SLA of one ministry, or of every ministry (``scope`` ``all``), in one month."""

    month: str = Field(examples=["2026-11"])
    scope: str = Field(description="a ministry code, or 'all'")
    start: datetime
    end: datetime
    as_of: datetime = Field(description="figures count up to here: the month's end, or now")
    complete: bool
    definition: str
    total: Availability
    attained: int = Field(description="ministries that met their availability target")
    breached: int = Field(description="ministries that missed a target")
    ministries: list[MinistrySla]
    incidents: list[Incident]
