"""Moving instances between hosts (platform admins): ``POST /v1/instances/{id}/migrate``,
``/v1/migrations``, host ``drain``/``undrain``/``maintenance``, ``/v1/drains`` and
``POST /v1/datacentres/{code}/evacuate``. The work is done by ``store/migration.py`` and
``store/drain.py``; the drain loop (``reconciler/drain.py``) advances drains."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from controlplane.api.context import RequestId, UserDep, audit_target
from controlplane.domain.auth import require_infra_reader, require_platform_admin
from controlplane.domain.errors import InvalidRequest
from controlplane.domain.migration import Drain, Migration
from controlplane.reconciler.drain import DrainLoop
from controlplane.schemas.migration import (
    DrainRequest,
    EvacuateRequest,
    MaintenanceRequest,
    MigrateRequest,
)

router = APIRouter(tags=["migrations"])


def _loop(request: Request) -> DrainLoop:
    loop: DrainLoop = request.app.state.drains
    return loop


@router.post(
    "/instances/{instance_id}/migrate",
    name="instance.migrate",
    status_code=202,
    response_model=Migration,
)
def migrate(
    instance_id: str, body: MigrateRequest, request: Request, who: UserDep, rid: RequestId
) -> Migration:
    """Live-migrate a RUNNING (or move a STOPPED) instance to another host of its data
    centre; the target is claimed now, the agents do the move."""
    require_platform_admin(who)
    audit_target(request, "instance", instance_id)
    return _loop(request).migrations.start(
        instance_id, actor=who.name, request_id=rid, target=body.target
    )


@router.get("/migrations", name="migration.list", response_model=list[Migration])
def list_migrations(
    request: Request,
    who: UserDep,
    instance: str | None = None,
    host: str | None = None,
    drain: str | None = None,
    active: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[Migration]:
    """Migrations, newest first."""
    require_infra_reader(who)
    return _loop(request).migrations.list(
        instance=instance, host=host, drain=drain, active=active, limit=limit
    )


@router.get("/migrations/{migration_id}", name="migration.show", response_model=Migration)
def show_migration(migration_id: str, request: Request, who: UserDep) -> Migration:
    """One migration."""
    require_infra_reader(who)
    return _loop(request).migrations.get(migration_id)


@router.post("/hosts/{host}/drain", name="host.drain", status_code=202, response_model=Drain)
def drain_host(host: str, body: DrainRequest, request: Request, who: UserDep) -> Drain:
    """DRAINING: no new placements; its instances are live-migrated away, at most
    ``max_parallel`` at a time."""
    require_platform_admin(who)
    audit_target(request, "host", host)
    loop = _loop(request)
    drain = loop.drains.drain_host(host, actor=who.name, max_parallel=body.max_parallel)
    loop.poke()
    return drain


@router.post(
    "/hosts/{host}/maintenance", name="host.maintenance", status_code=202, response_model=Drain
)
def maintain_host(host: str, body: MaintenanceRequest, request: Request, who: UserDep) -> Drain:
    """Drain, record a maintenance window until ``until`` (the SLA excludes it), then
    MAINTENANCE; the host is ACTIVE again at ``until`` or on ``undrain``."""
    require_platform_admin(who)
    audit_target(request, "host", host)
    loop = _loop(request)
    now = loop.drains.clock()
    if body.until.tzinfo is None:
        raise InvalidRequest(
            "until needs a time zone (e.g. 2026-12-01T06:00:00+08:00)",
            field="until",
            value=body.until.isoformat(),
        )
    if body.until <= now:
        raise InvalidRequest(
            f"until ({body.until.isoformat()}) must be in the future (now {now.isoformat()})",
            field="until",
            limit=now.isoformat(),
            value=body.until.isoformat(),
        )
    drain = loop.drains.maintenance_host(
        host,
        actor=who.name,
        until=body.until,
        reason=body.reason,
        max_parallel=body.max_parallel,
    )
    loop.poke()
    return drain


@router.post("/hosts/{host}/undrain", name="host.undrain", response_model=Drain | None)
def undrain_host(host: str, request: Request, who: UserDep) -> Drain | None:
    """Back to ACTIVE; a running drain is cancelled (moves in flight finish)."""
    require_platform_admin(who)
    audit_target(request, "host", host)
    drain = _loop(request).drains.undrain(host, actor=who.name)
    request.app.state.pending.poke()
    return drain


@router.get("/drains", name="drain.list", response_model=list[Drain])
def list_drains(
    request: Request, who: UserDep, subject: str | None = None, running: bool = False
) -> list[Drain]:
    """Drains and evacuations with progress, newest first."""
    require_infra_reader(who)
    return _loop(request).drains.list(subject=subject, running=running)


@router.get("/drains/{drain_id}", name="drain.show", response_model=Drain)
def show_drain(drain_id: str, request: Request, who: UserDep) -> Drain:
    """One drain with its progress."""
    require_infra_reader(who)
    return _loop(request).drains.get(drain_id)


@router.post(
    "/datacentres/{code}/evacuate", name="dc.evacuate", status_code=202, response_model=Drain
)
def evacuate_dc(code: str, body: EvacuateRequest, request: Request, who: UserDep) -> Drain:
    """Set the data centre DRAINING and move its instances to ``target`` (cold moves);
    calling it again resumes."""
    require_platform_admin(who)
    audit_target(request, "dc", code)
    loop = _loop(request)
    drain = loop.drains.evacuate_dc(
        code, target=body.target, actor=who.name, max_parallel=body.max_parallel
    )
    loop.poke()
    return drain
