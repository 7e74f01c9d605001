"""``/v1/maintenance-windows``: announced maintenance the SLA excludes.

Platform admins announce (``POST``) and withdraw (``DELETE``) windows for a data centre or
one host. Everyone may list them: root-scoped callers see all, others the windows of the
data centres their organisation's instances have used (the ones that affect them).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from controlplane.api.context import StoreDep, UserDep, audit_target
from controlplane.domain.auth import Principal, require_platform_admin
from controlplane.domain.errors import NotFound
from controlplane.domain.maintenance import MaintenanceWindow
from controlplane.domain.metering import Month, MonthText
from controlplane.domain.names import Code
from controlplane.schemas.sla import MaintenanceWindowCreate
from controlplane.store import Store

router = APIRouter(prefix="/maintenance-windows", tags=["maintenance"])


def _visible_dcs(store: Store, who: Principal) -> list[str] | None:
    """The data centres whose windows ``who`` sees (None: all)."""
    return None if "/" not in who.org_path else store.sla.datacentres_used(who.org_path)


@router.post("", name="maintenance.create", status_code=201, response_model=MaintenanceWindow)
def create_window(
    body: MaintenanceWindowCreate, request: Request, store: StoreDep, who: UserDep
) -> MaintenanceWindow:
    """Announce a window (platform admins only)."""
    audit_target(request, "maintenance", body.host or body.datacentre or "-")
    require_platform_admin(who)
    created = store.maintenance.create(
        datacentre=body.datacentre,
        host=body.host,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        reason=body.reason,
        actor=who.name,
    )
    audit_target(request, "maintenance", created.id)
    return created


@router.get("", name="maintenance.list", response_model=list[MaintenanceWindow])
def list_windows(
    store: StoreDep,
    who: UserDep,
    month: Annotated[
        MonthText | None, Query(description="only windows overlapping this month (YYYY-MM)")
    ] = None,
    datacentre: Annotated[Code | None, Query(description="only this data centre")] = None,
) -> list[MaintenanceWindow]:
    """Windows that affect the caller, by start time."""
    period = Month.parse(month) if month else None
    visible = _visible_dcs(store, who)
    if datacentre is not None:
        visible = [datacentre] if visible is None or datacentre in visible else []
    return store.maintenance.list(
        start=period.start if period else None,
        end=period.end if period else None,
        datacentres=visible,
    )


@router.get("/{window_id}", name="maintenance.show", response_model=MaintenanceWindow)
def show_window(window_id: str, store: StoreDep, who: UserDep) -> MaintenanceWindow:
    """One window (``maintenance.not_found`` if it does not affect the caller)."""
    found = store.maintenance.get(window_id)
    visible = _visible_dcs(store, who)
    if visible is not None and found.datacentre not in visible:
        raise NotFound("maintenance", window_id)
    return found


@router.delete("/{window_id}", name="maintenance.delete", status_code=204)
def delete_window(window_id: str, request: Request, store: StoreDep, who: UserDep) -> Response:
    """Withdraw a window (platform admins only): it no longer excludes anything."""
    audit_target(request, "maintenance", window_id)
    require_platform_admin(who)
    store.maintenance.delete(window_id)
    return Response(status_code=204)
