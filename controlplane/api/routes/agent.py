"""``/v1/agent``: registration, heartbeats, assignment long-poll and status reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from agents.protocol.v1 import (
    AssignmentList,
    Heartbeat,
    HeartbeatAck,
    RegisterRequest,
    RegisterResponse,
    StatusReport,
)
from controlplane.api.context import PrincipalDep, SettingsDep, StoreDep, audit_target
from controlplane.api.longpoll import GenerationWatch
from controlplane.domain.auth import require_agent_for

router = APIRouter(prefix="/agent", tags=["agent"])


@router.post("/register", name="agent.register", status_code=201, response_model=RegisterResponse)
def register(
    body: RegisterRequest, request: Request, store: StoreDep, settings: SettingsDep
) -> RegisterResponse:
    """Exchange a one-time bootstrap token for a host identity and credential."""
    audit_target(request, "host", body.name, store.orgs.ensure_root().path)
    host, credential = store.hosts.register(body)
    audit_target(request, "host", host.id)
    request.app.state.pending.poke()
    return RegisterResponse(
        host_id=host.id,
        datacentre=host.datacentre,
        credential=credential,
        heartbeat_interval_s=settings.heartbeat_interval_s,
    )


@router.post("/hosts/{host_id}/heartbeat", name="agent.heartbeat", response_model=HeartbeatAck)
def heartbeat(
    host_id: str,
    body: Heartbeat,
    request: Request,
    store: StoreDep,
    who: PrincipalDep,
    settings: SettingsDep,
) -> HeartbeatAck:
    """Liveness and capacity; not audited (telemetry)."""
    request.state.audit_skip = True
    require_agent_for(who, host_id)
    before = store.hosts.get(host_id)
    host = store.hosts.heartbeat(host_id, body)
    if host.capacity != before.capacity or host.state != before.state:
        request.app.state.pending.poke()  # more room, or a host back from DOWN
    return HeartbeatAck(
        host_state=host.state.value,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        fence_after_s=request.app.state.liveness.evacuation.lease_for(host.datacentre),
    )


@router.get("/hosts/{host_id}/assignments", name="agent.assignments", response_model=AssignmentList)
async def assignments(
    host_id: str,
    request: Request,
    store: StoreDep,
    who: PrincipalDep,
    settings: SettingsDep,
    generation: Annotated[int, Query(ge=-1)] = -1,
    wait: Annotated[float, Query(ge=0, le=300)] = 0,
) -> AssignmentList:
    """Long-poll: answer as soon as the host's assignment generation differs from
    ``generation``, or after ``wait`` seconds (capped by the server) with the current list."""
    require_agent_for(who, host_id)
    wait = min(wait, settings.max_poll_wait_s)
    current = await run_in_threadpool(store.instances.assignment_generation, host_id)
    if current == generation and wait > 0:
        watch: GenerationWatch = request.app.state.longpoll
        await watch.wait(host_id, generation, wait)
    return await run_in_threadpool(store.instances.assignments, host_id)


@router.post("/hosts/{host_id}/status", name="agent.status", status_code=204)
def status(
    host_id: str, body: StatusReport, request: Request, store: StoreDep, who: PrincipalDep
) -> Response:
    """Observed states; instances not assigned to this host are ignored."""
    require_agent_for(who, host_id)
    audit_target(request, "host", host_id)
    outcome = store.instances.apply_status(host_id, body.instances)
    if not outcome.changed:
        request.state.audit_skip = True
    if outcome.released:
        request.app.state.pending.poke()
    return Response(status_code=204)
