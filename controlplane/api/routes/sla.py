"""``/v1/sla/report``: monthly SLA attainment of one ministry, or of every ministry.

Ministry admins and auditors read their own ministry's report; root-scoped platform
admins and auditors read any ministry's, or all of them at once (``all=true``, the
operator-wide view). Members are refused; another ministry's report is ``org.not_found``,
as everywhere else. Scoping, targets and the report are in
:mod:`controlplane.api.sla_report` (the dashboard uses the same).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from controlplane.api.context import SettingsDep, StoreDep, UserDep
from controlplane.api.sla_report import sla_report, sla_scope, targets_of
from controlplane.domain.metering import Month, MonthText
from controlplane.domain.names import Code
from controlplane.schemas.sla import SlaReport

router = APIRouter(prefix="/sla", tags=["sla"])


@router.get("/report", name="sla.report", response_model=SlaReport)
def report(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    who: UserDep,
    month: Annotated[MonthText, Query(description="calendar month in UTC, YYYY-MM")],
    ministry: Annotated[
        Code | None, Query(description="ministry code (default: your own, or all for root)")
    ] = None,
    everything: Annotated[
        bool, Query(alias="all", description="every ministry (root-scoped callers only)")
    ] = False,
) -> SlaReport:
    """Availability, error budget, provisioning times, breaches, incidents and worst
    instances of one ministry (or all) in ``month``, against their service class."""
    scope = sla_scope(store, who, ministry, everything)
    targets = targets_of(request, settings)
    found, _histories = sla_report(store, scope, Month.parse(month), store.clock(), targets)
    return found
