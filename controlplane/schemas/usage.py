"""Usage report (``GET /v1/usage``): metered usage per project for one calendar month."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from controlplane.domain.metering import UsageLine, UsageTotal
from controlplane.domain.org import OrgKind


class UsageReport(BaseModel):
    """Usage of every project in ``org``'s subtree in ``month`` (UTC), as of ``as_of``.

    Usage accrues while an instance holds a host claim (scheduled until deleted, in any
    power state). ``complete`` is false while the month is still running: live instances
    are then counted up to ``as_of``. Disk GiB-months divide by the month's full
    ``hours_in_month`` either way.
    """

    month: str = Field(examples=["2026-11"])
    org: str = Field(description="the organisation reported on (its whole subtree)")
    org_kind: OrgKind
    org_path: str
    start: datetime = Field(description="first instant of the month (UTC), inclusive")
    end: datetime = Field(description="first instant of the next month (UTC), exclusive")
    as_of: datetime = Field(description="usage is counted up to here: end, or now")
    complete: bool = Field(description="whether the month is over (the figures are final)")
    hours_in_month: int
    lines: list[UsageLine] = Field(description="one per project with usage, in org order")
    totals: list[UsageTotal] = Field(description="one per ministry: the sum of its lines")
    total: UsageTotal = Field(description="the sum of every line")
