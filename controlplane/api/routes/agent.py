"""``/v1/agent``: registration, heartbeats, assignment long-poll and status reports.

Also owns two small per-process memories that keep the idle fleet cheap:
:class:`HeartbeatBook`, each host's last acknowledged heartbeat, so that a heartbeat costs
one store transaction for the host (no read of the host before the update) and still wakes
the pending-placement loop when capacity may have appeared; and :class:`LoadedHosts`, the
hosts with a VM under a Cloud Open Lab load, read once per ``LOADED_HOSTS_TTL_S`` for the
whole fleet, so that heartbeat acks tell idle agents not to poll for load profiles.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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
from controlplane.api.routes.lab import runs_of
from controlplane.domain.auth import require_agent_for
from controlplane.domain.host import Host
from controlplane.domain.resources import Resources
from controlplane.store import Store

router = APIRouter(prefix="/agent", tags=["agent"])


@dataclass(frozen=True)
class _Beat:
    capacity: Resources
    state: str
    at: datetime


class HeartbeatBook:
    """The last heartbeat this API process acknowledged for each host.

    :meth:`record` says whether a heartbeat may have given the scheduler more room: the
    host is new to this process, its capacity or state differ from the last ack, or its
    previous heartbeat is older than ``silent_after_s`` (the host may have been SUSPECT or
    DOWN and just came back). Another replica's heartbeats only make this say yes more
    often, which costs one extra pending pass, never a missed one.
    """

    def __init__(self, silent_after_s: float) -> None:
        self.silent_after_s = silent_after_s
        self._lock = threading.Lock()
        self._beats: dict[str, _Beat] = {}

    def record(self, host: Host) -> bool:
        """Remember ``host`` as just acknowledged; True if it may have changed."""
        at = host.last_heartbeat
        beat = _Beat(host.capacity, host.state.value, at) if at is not None else None
        with self._lock:
            before = self._beats.pop(host.id, None)
            if beat is not None:
                self._beats[host.id] = beat
        if before is None or beat is None:
            return True
        if (before.capacity, before.state) != (beat.capacity, beat.state):
            return True
        return (beat.at - before.at).total_seconds() >= self.silent_after_s


#: How stale the set of hosts under a Lab load may be (a new load is noticed by the agent
#: at its next heartbeat after this).
LOADED_HOSTS_TTL_S = 2.0


class LoadedHosts:
    """The hosts with a VM under a Cloud Open Lab scenario load, re-read at most every
    ``ttl_s`` seconds (one query for the whole fleet, however many agents heartbeat)."""

    def __init__(
        self,
        read: Callable[[], set[str]],
        ttl_s: float = LOADED_HOSTS_TTL_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.ttl_s = ttl_s
        self._now = now
        self._lock = threading.Lock()
        self._hosts: set[str] = set()
        self._until = float("-inf")

    def __contains__(self, host_id: object) -> bool:
        with self._lock:
            if self._now() >= self._until:
                self._hosts = self._read()
                self._until = self._now() + self.ttl_s
            return host_id in self._hosts


_STATE_LOCK = threading.Lock()


def heartbeat_book(request: Request, silent_after_s: float) -> HeartbeatBook:
    """This app's :class:`HeartbeatBook` (created on first use, kept in ``app.state``)."""
    state = request.app.state
    book: HeartbeatBook | None = getattr(state, "heartbeat_book", None)
    if book is None:
        with _STATE_LOCK:
            book = getattr(state, "heartbeat_book", None)
            if book is None:
                book = HeartbeatBook(silent_after_s)
                state.heartbeat_book = book
    return book


def loaded_hosts(request: Request, store: Store) -> LoadedHosts:
    """This app's :class:`LoadedHosts` (created on first use, kept in ``app.state``)."""
    state = request.app.state
    loaded: LoadedHosts | None = getattr(state, "lab_loaded_hosts", None)
    if loaded is None:
        with _STATE_LOCK:
            loaded = getattr(state, "lab_loaded_hosts", None)
            if loaded is None:
                loaded = LoadedHosts(runs_of(store).loaded_hosts)
                state.lab_loaded_hosts = loaded
    return loaded


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
    host = store.hosts.heartbeat(host_id, body)
    may_have_changed = heartbeat_book(request, settings.host_suspect_after_s).record(host)
    if may_have_changed:
        request.app.state.pending.poke()  # more room, or a host back from DOWN
    return HeartbeatAck(
        host_state=host.state.value,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        fence_after_s=request.app.state.liveness.evacuation.lease_for(host.datacentre),
        report_all=may_have_changed,  # its instances may be UNKNOWN: hear about all of them
        lab_loads=host_id in loaded_hosts(request, store),
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
    if wait > 0 and generation >= 0:  # otherwise the answer is the list, at once
        current = await run_in_threadpool(store.instances.assignment_generation, host_id)
        if current == generation:
            watch: GenerationWatch = request.app.state.longpoll
            await watch.wait(host_id, generation, wait)
    return await run_in_threadpool(store.instances.assignments, host_id)


@router.post(
    "/hosts/{host_id}/status",
    name="agent.status",
    status_code=204,
    responses={200: {"model": AssignmentList, "description": "the assignments afterwards"}},
)
def status(
    host_id: str,
    body: StatusReport,
    request: Request,
    store: StoreDep,
    who: PrincipalDep,
    assignments: Annotated[
        bool,
        Query(
            description="when the report changed an instance's state, answer 200 with the "
            "host's assignments afterwards (a report can move the generation: the agent then "
            "needs no second long-poll round trip); otherwise, and by default, 204"
        ),
    ] = False,
) -> Response:
    """Observed states; instances not assigned to this host are ignored."""
    require_agent_for(who, host_id)
    audit_target(request, "host", host_id)
    outcome = store.instances.apply_status(host_id, body.instances)
    if not outcome.changed:
        request.state.audit_skip = True
    if outcome.released:
        request.app.state.pending.poke()
    if assignments and outcome.changed:
        listing = store.instances.assignments(host_id)
        return Response(listing.model_dump_json(), media_type="application/json")
    return Response(status_code=204)
