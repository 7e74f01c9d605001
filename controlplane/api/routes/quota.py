"""``/v1/quotas``: limits, usage and headroom per organisation node; policy apply; verify."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from controlplane.api.context import StoreDep, UserDep, audit_target
from controlplane.domain.auth import Principal, Role, require_mutate, require_platform_admin
from controlplane.domain.errors import Forbidden
from controlplane.domain.quota import (
    QuotaChange,
    QuotaDrift,
    QuotaEvent,
    QuotaReport,
    QuotaSet,
    resolve_policy,
)
from controlplane.schemas.quota import QuotaApply, QuotaVerify
from quotas import load_classes

router = APIRouter(prefix="/quotas", tags=["quotas"])


@router.post("/apply", name="quota.apply", response_model=list[QuotaChange])
def apply_policy(
    body: QuotaApply, request: Request, store: StoreDep, who: UserDep
) -> list[QuotaChange]:
    """Apply a policy file (platform-admins): idempotent; ``dry_run`` returns the diff only."""
    audit_target(request, "quota", body.filename)
    require_platform_admin(who)
    known = {org.code for org in store.orgs.list(who.org_path)}
    desired = resolve_policy(body.policy, body.filename, load_classes(), known)
    if body.dry_run:
        request.state.audit_skip = True
    return store.quotas.apply(desired, dry_run=body.dry_run)


@router.post("/verify", name="quota.verify", response_model=list[QuotaDrift])
def verify(body: QuotaVerify, request: Request, store: StoreDep, who: UserDep) -> list[QuotaDrift]:
    """Compare stored usage with live instances in the caller's scope; repair if asked."""
    audit_target(request, "quota", who.org_path)
    if body.repair:
        require_platform_admin(who)
    elif who.role is Role.MEMBER:
        raise Forbidden("members may not verify quotas; ask an admin or auditor")
    else:
        request.state.audit_skip = True
    return store.quotas.verify(who.org_path, repair=body.repair)


@router.get("/{org}", name="quota.show", response_model=QuotaReport)
def show(org: str, store: StoreDep, who: UserDep) -> QuotaReport:
    """Limits, usage, headroom and percentages of ``org`` and its children."""
    return store.quotas.report(org, who.org_path)


@router.get("/{org}/events", name="quota.events", response_model=list[QuotaEvent])
def events(
    org: str, store: StoreDep, who: UserDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[QuotaEvent]:
    """Soft-threshold crossings in ``org``'s subtree, newest first."""
    return store.quotas.events(store.quotas.report(org, who.org_path).node.path, limit)


@router.patch("/{org}", name="quota.set", response_model=list[QuotaChange])
def set_limits(
    org: str,
    body: QuotaSet,
    request: Request,
    store: StoreDep,
    who: UserDep,
    dry_run: bool = False,
) -> list[QuotaChange]:
    """Change some limits of ``org`` (``null``: unlimited); returns what changed."""
    node = store.quotas.report(org, who.org_path).node
    audit_target(request, "quota", org, node.path)
    _require_limit_setter(who, node.path)
    return store.quotas.set(org, body.limits, body.soft_threshold, dry_run=dry_run)


def _require_limit_setter(who: Principal, path: str) -> None:
    """Platform-admins set any limit; ministry-admins only below their own node (a ministry
    cannot raise its own cap)."""
    require_mutate(who, path)
    if who.role is Role.PLATFORM_ADMIN:
        return
    if who.role is Role.MINISTRY_ADMIN and path != who.org_path:
        return
    raise Forbidden(
        f"{who.role.value} {who.name!r} may not change the limits of {path!r}; "
        "limits are set by the level above",
        role=who.role.value,
    )
