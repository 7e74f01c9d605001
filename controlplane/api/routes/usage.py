"""``/v1/usage``: metered usage per project for one month (showback; the CLI adds fees)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from controlplane.api.context import StoreDep, UserDep
from controlplane.domain.errors import NotFound
from controlplane.domain.metering import (
    Month,
    MonthText,
    grand_total,
    metered_until,
    totals,
    usage_lines,
)
from controlplane.domain.names import Code
from controlplane.domain.org import within
from controlplane.schemas.usage import UsageReport

router = APIRouter(prefix="/usage", tags=["usage"])


@router.get("", name="usage.report", response_model=UsageReport)
def report(
    store: StoreDep,
    who: UserDep,
    month: Annotated[MonthText, Query(description="calendar month in UTC, YYYY-MM")],
    org: Annotated[
        Code | None,
        Query(description="ministry, agency or project code (default: your own scope)"),
    ] = None,
) -> UsageReport:
    """Usage of every project under ``org`` (inside the caller's scope) in ``month``.

    Instance-hours, vCPU-hours, RAM GiB-hours and disk GiB-months per project, summed per
    ministry and in all. An organisation outside the caller's scope is ``org.not_found``.
    """
    node = store.orgs.get(org or who.org_path.rsplit("/", 1)[-1])
    if not within(node.path, who.org_path):
        raise NotFound("org", node.code)  # as if it did not exist: no leak
    period = Month.parse(month)
    now = store.clock()
    lines = usage_lines(store.usage.intervals(node.path, period.start, period.end), period, now)
    until = metered_until(period, now)
    return UsageReport(
        month=str(period),
        org=node.code,
        org_kind=node.kind,
        org_path=node.path,
        start=period.start,
        end=period.end,
        as_of=until,
        complete=until == period.end,
        hours_in_month=period.hours,
        lines=lines,
        totals=totals(lines),
        total=grand_total(lines),
    )
