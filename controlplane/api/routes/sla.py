"""``/v1/sla/report``: monthly SLA attainment of one ministry, or of every ministry.

Ministry admins and auditors read their own ministry's report; root-scoped platform
admins and auditors read any ministry's, or all of them at once (``all=true``, the
operator-wide view). Members are refused; another ministry's report is ``org.not_found``,
as everywhere else. The figures come from :func:`controlplane.sla.report.build_report`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request

from controlplane.api.context import SettingsDep, StoreDep, UserDep
from controlplane.domain.auth import Principal, Role
from controlplane.domain.errors import Forbidden, InvalidRequest, NotFound
from controlplane.domain.metering import Month, MonthText, metered_until
from controlplane.domain.names import Code
from controlplane.domain.org import OrgKind, within
from controlplane.schemas.sla import SlaReport
from controlplane.settings import Settings
from controlplane.sla.report import ReportInput, build_report
from controlplane.sla.targets import SlaTargets, load_targets
from controlplane.store import Store

router = APIRouter(prefix="/sla", tags=["sla"])

#: The packaged targets file (``GOVCLOUD_SLA_TARGETS_FILE`` overrides it).
DEFAULT_TARGETS = "targets.yaml"


def read_targets(path: Path | None) -> SlaTargets:
    """The targets in ``path``, or the packaged default."""
    if path is None:
        text = resources.files("controlplane.sla").joinpath(DEFAULT_TARGETS).read_text("utf-8")
        return load_targets(text, f"controlplane/sla/{DEFAULT_TARGETS}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            f"cannot read the SLA targets file {path}: {exc}; fix GOVCLOUD_SLA_TARGETS_FILE",
            code="sla.targets_unreadable",
            field="sla_targets_file",
            value=str(path),
        ) from exc
    return load_targets(text, str(path))


def targets_of(request: Request, settings: Settings) -> SlaTargets:
    """The app's targets, read once per file modification."""
    path = settings.sla_targets_file
    stamp = (path, path.stat().st_mtime_ns if path is not None and path.exists() else None)
    cached = getattr(request.app.state, "sla_targets", None)
    if cached is None or cached[0] != stamp:
        cached = (stamp, read_targets(path))
        request.app.state.sla_targets = cached
    found: SlaTargets = cached[1]
    return found


def _is_root(who: Principal) -> bool:
    return "/" not in who.org_path


def _scope(store: Store, who: Principal, ministry: str | None, everything: bool) -> str | None:
    """The ministry reported on (None: every ministry), after the role checks."""
    if who.role not in (Role.PLATFORM_ADMIN, Role.MINISTRY_ADMIN, Role.AUDITOR):
        raise Forbidden(
            f"{who.role.value} {who.name!r} may not read SLA reports; ask your ministry "
            "admin or an auditor",
            role=who.role.value,
        )
    if everything and ministry:
        raise InvalidRequest("give either ministry or all=true, not both", field="all", value=True)
    if everything or (ministry is None and _is_root(who)):
        if not _is_root(who):
            raise Forbidden(
                "only root-scoped platform admins and auditors see every ministry's SLA",
                scope=who.org_path,
            )
        return None
    if ministry is None:
        parts = who.org_path.split("/")
        if len(parts) != 2:
            raise Forbidden(
                f"SLA reports are per ministry; {who.name!r} is scoped to {who.org_path!r}. "
                "Ask the ministry's admin",
                scope=who.org_path,
            )
        return parts[1]
    node = store.orgs.get(ministry)
    if not within(node.path, who.org_path):
        raise NotFound("org", ministry)  # as if it did not exist: no leak
    if node.kind is not OrgKind.MINISTRY:
        raise InvalidRequest(
            f"{ministry!r} is {'an' if node.kind.value[0] in 'aeiou' else 'a'} "
            f"{node.kind.value}; SLA reports are per ministry ({node.path})",
            field="ministry",
            value=ministry,
        )
    return node.code


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
    chosen = _scope(store, who, ministry, everything)
    targets = targets_of(request, settings)
    period = Month.parse(month)
    now = store.clock()
    hi = metered_until(period, now)
    if chosen is None:
        scope_path = who.org_path
        ministries = [o.code for o in store.orgs.list(scope_path) if o.kind is OrgKind.MINISTRY]
    else:
        scope_path = store.orgs.get(chosen).path
        ministries = [chosen]
    return build_report(
        ReportInput(
            month=period,
            now=now,
            scope=chosen or "all",
            ministries=ministries,
            histories=store.sla.histories(scope_path, period.start, hi),
            windows=store.maintenance.list(start=period.start, end=hi),
            targets=targets,
            host_names=store.sla.host_names(),
        )
    )
