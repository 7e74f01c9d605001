"""Consolidation for energy (platform admins; root auditors may read):
``/v1/datacentres/{code}/consolidation`` (POST ``/plan`` dry run, POST execute, GET
status, POST ``/pause``, ``/resume``, ``/cancel``) and ``/v1/consolidations`` (history).
The work is done by ``store/consolidation.py``; the consolidation loop
(``reconciler/consolidation.py``) executes stored plans."""

from __future__ import annotations

from fastapi import APIRouter, Request

from controlplane.api.context import UserDep, audit_target
from controlplane.domain.auth import require_infra_reader, require_platform_admin
from controlplane.domain.consolidation import (
    Consolidation,
    ConsolidationParams,
    ConsolidationPlan,
)
from controlplane.reconciler.consolidation import ConsolidationLoop

router = APIRouter(tags=["consolidation"])
_BASE = "/datacentres/{code}/consolidation"


def _loop(request: Request) -> ConsolidationLoop:
    loop: ConsolidationLoop = request.app.state.consolidation
    return loop


@router.post(f"{_BASE}/plan", name="dc.consolidation_plan", response_model=ConsolidationPlan)
def plan(code: str, body: ConsolidationParams, request: Request, who: UserDep) -> ConsolidationPlan:
    """Dry run: the moves that would empty lightly loaded hosts, the hosts freed, why the
    others are not, and the power before and after. Nothing is written."""
    require_infra_reader(who)
    audit_target(request, "dc", code)
    return _loop(request).repo.plan(code, body)


@router.post(_BASE, name="dc.consolidate", status_code=202, response_model=Consolidation)
def start(code: str, body: ConsolidationParams, request: Request, who: UserDep) -> Consolidation:
    """Plan afresh, store the plan and execute it (at most ``max_parallel`` live migrations
    at a time); the emptied hosts end in MAINTENANCE, powered down."""
    require_platform_admin(who)
    audit_target(request, "dc", code)
    loop = _loop(request)
    started = loop.repo.start(code, body, actor=who.name)
    loop.poke()
    return started


@router.get(_BASE, name="dc.consolidation", response_model=Consolidation)
def show(code: str, request: Request, who: UserDep) -> Consolidation:
    """The data centre's open consolidation (else its latest) with progress."""
    require_infra_reader(who)
    return _loop(request).repo.current(code)


@router.post(f"{_BASE}/pause", name="dc.consolidation_pause", response_model=Consolidation)
def pause(code: str, request: Request, who: UserDep) -> Consolidation:
    """Start no new moves (those in flight finish)."""
    require_platform_admin(who)
    audit_target(request, "dc", code)
    return _loop(request).repo.pause(code, actor=who.name)


@router.post(f"{_BASE}/resume", name="dc.consolidation_resume", response_model=Consolidation)
def resume(code: str, request: Request, who: UserDep) -> Consolidation:
    """Carry on with the same stored plan."""
    require_platform_admin(who)
    audit_target(request, "dc", code)
    loop = _loop(request)
    resumed = loop.repo.resume(code, actor=who.name)
    loop.poke()
    return resumed


@router.post(f"{_BASE}/cancel", name="dc.consolidation_cancel", response_model=Consolidation)
def cancel(code: str, request: Request, who: UserDep) -> Consolidation:
    """Stop for good: pending moves are dropped, hosts not powered down return to active."""
    require_platform_admin(who)
    audit_target(request, "dc", code)
    cancelled = _loop(request).repo.cancel(code, actor=who.name)
    request.app.state.pending.poke()
    return cancelled


@router.get("/consolidations", name="consolidation.list", response_model=list[Consolidation])
def list_consolidations(
    request: Request, who: UserDep, datacentre: str | None = None
) -> list[Consolidation]:
    """Consolidations, newest first."""
    require_infra_reader(who)
    return _loop(request).repo.list(datacentre)


@router.get(
    "/consolidations/{consolidation_id}", name="consolidation.show", response_model=Consolidation
)
def show_one(consolidation_id: str, request: Request, who: UserDep) -> Consolidation:
    """One consolidation by id."""
    require_infra_reader(who)
    return _loop(request).repo.get(consolidation_id)
