"""Who reads which ministry's SLA, against which targets, and the report over them.

Shared by ``GET /v1/sla/report`` (``routes/sla.py``) and the dashboard (``dashboard.py``),
so both scope a caller the same way: ministry admins and auditors read their own
ministry; root-scoped platform admins and auditors any ministry, or all of them; members,
agents and anyone below a ministry nothing (:class:`Forbidden`). Another ministry is
``org.not_found``, as everywhere else. The figures come from the pure
:func:`controlplane.sla.report.build_report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

from fastapi import Request

from controlplane.domain.auth import Principal, Role
from controlplane.domain.errors import Forbidden, InvalidRequest, NotFound
from controlplane.domain.metering import Month, metered_until
from controlplane.domain.org import OrgKind, within
from controlplane.schemas.sla import SlaReport
from controlplane.settings import Settings
from controlplane.sla.history import InstanceHistory
from controlplane.sla.report import ReportInput, build_report
from controlplane.sla.targets import SlaTargets, load_targets
from controlplane.store import Store

#: The packaged targets file (``GOVCLOUD_SLA_TARGETS_FILE`` overrides it).
DEFAULT_TARGETS = "targets.yaml"
#: Roles that read SLA figures.
SLA_READERS = (Role.PLATFORM_ADMIN, Role.MINISTRY_ADMIN, Role.AUDITOR)


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


@dataclass(frozen=True)
class SlaScope:
    """The ministries a report covers and the subtree whose histories count."""

    #: The one ministry's code, or None for every ministry under ``path``.
    ministry: str | None
    #: Org path whose instances are read.
    path: str
    #: (code, name) of each ministry reported on.
    ministries: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        """The report's scope: the ministry's code, or ``all``."""
        return self.ministry or "all"

    @property
    def codes(self) -> list[str]:
        """The codes of the ministries reported on."""
        return [code for code, _ in self.ministries]


def _is_root(who: Principal) -> bool:
    return "/" not in who.org_path


def _every_ministry(store: Store, path: str) -> SlaScope:
    found = store.orgs.list(path)
    pairs = tuple((o.code, o.name) for o in found if o.kind is OrgKind.MINISTRY)
    return SlaScope(ministry=None, path=path, ministries=pairs)


def sla_scope(
    store: Store, who: Principal, ministry: str | None = None, everything: bool = False
) -> SlaScope:
    """What ``who`` reads when asking for ``ministry`` (None: their own, or every ministry
    for root-scoped callers) or for ``everything``; Forbidden, NotFound or InvalidRequest
    otherwise, each saying why."""
    if who.is_agent or who.role not in SLA_READERS:
        raise Forbidden(
            "SLA figures are shown to ministry admins, auditors and platform admins; "
            f"{who.role.value} {who.name!r} can ask their ministry admin or an auditor "
            "for the report",
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
        return _every_ministry(store, who.org_path)
    if ministry is None:
        parts = who.org_path.split("/")
        if len(parts) != 2:
            raise Forbidden(
                f"SLA is reported per ministry; {who.name!r} is scoped to {who.org_path!r}, "
                "below a ministry. Ask the ministry's admin for its report",
                scope=who.org_path,
            )
        ministry = parts[1]
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
    return SlaScope(ministry=node.code, path=node.path, ministries=((node.code, node.name),))


def sla_report(
    store: Store, scope: SlaScope, month: Month, now: datetime, targets: SlaTargets
) -> tuple[SlaReport, list[InstanceHistory]]:
    """The report of ``scope`` for ``month`` as of ``now``, and the histories it read."""
    hi = metered_until(month, now)
    histories = store.sla.histories(scope.path, month.start, hi)
    report = build_report(
        ReportInput(
            month=month,
            now=now,
            scope=scope.label,
            ministries=scope.codes,
            histories=histories,
            windows=store.maintenance.list(start=month.start, end=hi),
            targets=targets,
            host_names=store.sla.host_names(),
        )
    )
    return report, histories
