"""``/v1/orgs``: the organisation tree, seen from the caller's scope."""

from __future__ import annotations

from fastapi import APIRouter, Request

from controlplane.api.context import StoreDep, UserDep, audit_target
from controlplane.api.routes.agent import forget_fence_leases
from controlplane.domain.auth import Role, require_mutate, require_platform_admin
from controlplane.domain.errors import Forbidden, NotFound
from controlplane.domain.org import Organisation, can_see_org
from controlplane.schemas.org import OrgCreate, OrgDetail, OrgUpdate

router = APIRouter(prefix="/orgs", tags=["orgs"])


@router.get("", name="org.list", response_model=list[Organisation])
def list_orgs(store: StoreDep, who: UserDep) -> list[Organisation]:
    """The caller's subtree."""
    return store.orgs.list(who.org_path)


@router.get("/{code}", name="org.show", response_model=OrgDetail)
def show_org(code: str, store: StoreDep, who: UserDep) -> OrgDetail:
    """One node the caller may see, with its settings."""
    org = store.orgs.detail(code)
    if not can_see_org(org.path, who.org_path):
        raise NotFound("org", code)
    return org


@router.patch("/{code}", name="org.update", response_model=OrgDetail)
def update_org(
    code: str, body: OrgUpdate, request: Request, store: StoreDep, who: UserDep
) -> OrgDetail:
    """Platform-admins set a ministry's evacuation policy (or ``inherit``)."""
    org = store.orgs.get(code)
    if not can_see_org(org.path, who.org_path):  # as if it did not exist: no leak
        raise NotFound("org", code)
    audit_target(request, "org", code, org.path)
    require_platform_admin(who)
    updated = store.orgs.update(code, body)
    forget_fence_leases(request)  # a ministry may now force restart-elsewhere
    return updated


@router.post("", name="org.create", status_code=201, response_model=Organisation)
def create_org(body: OrgCreate, request: Request, store: StoreDep, who: UserDep) -> Organisation:
    """Platform-admins add ministries; ministry-admins add agencies and projects below."""
    parent = store.orgs.get(body.parent)
    if not can_see_org(parent.path, who.org_path):  # as if it did not exist: no leak
        raise NotFound("org", body.parent)
    audit_target(request, "org", body.code, f"{parent.path}/{body.code}")
    require_mutate(who, parent.path)
    if who.role not in (Role.PLATFORM_ADMIN, Role.MINISTRY_ADMIN):
        raise Forbidden(f"{who.role.value} may not create organisations", role=who.role.value)
    return store.orgs.create(body.code, body.name, body.parent)
