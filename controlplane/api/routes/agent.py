"""``/v1/agent``: registration, heartbeats, assignment long-poll and status reports.

Also owns the small per-process memories that keep the idle fleet cheap:
:class:`HeartbeatBook`, each host's last acknowledged heartbeat, so that a heartbeat costs
one store transaction for the host (one conditional UPDATE that also re-verifies the
agent's credential, which then stays cached) and still wakes the pending-placement loop
when capacity may have appeared; and :class:`Recent` values read at most once per TTL:
the hosts with a VM under a Cloud Open Lab load (:class:`LoadedHosts`, one query for the
whole fleet, so that heartbeat acks tell idle agents not to poll for load profiles) and
each data centre's fencing lease (dropped at once when this replica changes an evacuation
policy).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Annotated, Generic, TypeVar

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from agents.protocol.v1 import (
    AssignmentList,
    Heartbeat,
    HeartbeatAck,
    RegisterRequest,
    RegisterResponse,
    StatusReport,
)
from controlplane.api import audit
from controlplane.api.context import (
    PrincipalDep,
    SettingsDep,
    StoreDep,
    audit_target,
    bearer_token,
)
from controlplane.api.longpoll import GenerationWatch
from controlplane.api.routes.lab import runs_of
from controlplane.domain.auth import require_agent_for
from controlplane.store import Store
from controlplane.store.host import Beat
from controlplane.store.tables import InstanceEventRow

router = APIRouter(prefix="/agent", tags=["agent"])


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
        self._beats: dict[str, Beat] = {}

    def record(self, beat: Beat) -> bool:
        """Remember ``beat`` as just acknowledged; True if the host may have changed."""
        with self._lock:
            before = self._beats.get(beat.host_id)
            self._beats[beat.host_id] = beat
        if before is None:
            return True
        if (before.capacity, before.state) != (beat.capacity, beat.state):
            return True
        return (beat.at - before.at).total_seconds() >= self.silent_after_s


#: How stale the set of hosts under a Lab load, or a data centre's fencing lease, may be
#: (a new load or policy reaches the agent at its next heartbeat after this).
LOADED_HOSTS_TTL_S = 2.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """Values of ``read(key)``, each re-read at most every ``ttl_s`` seconds however many
    requests ask for it; :meth:`forget` drops them all (a change made by this process)."""

    def __init__(
        self,
        read: Callable[[K], V],
        ttl_s: float = LOADED_HOSTS_TTL_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.ttl_s = ttl_s
        self._now = now
        self._lock = threading.Lock()
        self._values: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V:
        """The value for ``key``, read now if it is missing or older than ``ttl_s``."""
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and self._now() < hit[0]:
                return hit[1]
            value = self._read(key)
            self._values[key] = (self._now() + self.ttl_s, value)
            return value

    def forget(self) -> None:
        """Drop every value: the next :meth:`get` of each key reads it again."""
        with self._lock:
            self._values.clear()


class LoadedHosts:
    """The hosts with a VM under a Cloud Open Lab scenario load, re-read at most every
    ``ttl_s`` seconds (one query for the whole fleet, however many agents heartbeat)."""

    def __init__(
        self,
        read: Callable[[], set[str]],
        ttl_s: float = LOADED_HOSTS_TTL_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._recent: Recent[None, set[str]] = Recent(lambda _key: read(), ttl_s, now)

    def __contains__(self, host_id: object) -> bool:
        return host_id in self._recent.get(None)


_STATE_LOCK = threading.Lock()


def _json(answer: BaseModel) -> Response:
    """``answer`` rendered once: it is valid already, so FastAPI's re-validation of the
    response model (in another thread-pool hop for a sync route) is skipped."""
    return Response(answer.model_dump_json(), media_type="application/json")


T = TypeVar("T")


def _shared(request: Request, name: str, make: Callable[[], T]) -> T:
    """``app.state.<name>``, made by ``make()`` on first use (once per app, under a lock)."""
    state = request.app.state
    value: T | None = getattr(state, name, None)
    if value is None:
        with _STATE_LOCK:
            value = getattr(state, name, None)
            if value is None:
                value = make()
                setattr(state, name, value)
    return value


def heartbeat_book(request: Request, silent_after_s: float) -> HeartbeatBook:
    """This app's :class:`HeartbeatBook`."""
    return _shared(request, "heartbeat_book", lambda: HeartbeatBook(silent_after_s))


def loaded_hosts(request: Request, store: Store) -> LoadedHosts:
    """This app's :class:`LoadedHosts`."""
    return _shared(request, "lab_loaded_hosts", lambda: LoadedHosts(runs_of(store).loaded_hosts))


def fence_leases(request: Request) -> Recent[str, float]:
    """This app's fencing lease per data centre (:func:`forget_fence_leases` drops it
    when a policy changes)."""
    state = request.app.state
    return _shared(request, "fence_leases", lambda: Recent(state.liveness.evacuation.lease_for))


def forget_fence_leases(request: Request) -> None:
    """A data centre's or ministry's evacuation policy changed: re-read the leases."""
    leases: Recent[str, float] | None = getattr(request.app.state, "fence_leases", None)
    if leases is not None:
        leases.forget()


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
) -> Response:
    """Liveness and capacity; not audited (telemetry).

    The usual heartbeat is one conditional UPDATE that also checks the agent still holds
    its credential; it then keeps the agent's principal cached (as a fresh look-up
    would), so the agent's long-polls and reports authenticate without the database.
    """
    request.state.audit_skip = True
    require_agent_for(who, host_id)
    digest: str = request.state.token_digest
    generation = store.users.cache.generation  # a revocation meanwhile: cache nothing
    beat = store.hosts.quiet_heartbeat(host_id, body, digest)
    if beat is None:  # back from silence, a new capacity, or the credential was revoked
        store.users.cache.drop(digest=digest)
        require_agent_for(store.users.authenticate(bearer_token(request)), host_id)
        beat = store.hosts.heartbeat(host_id, body)
    else:
        store.users.cache.put(digest, who, generation)
    may_have_changed = heartbeat_book(request, settings.host_suspect_after_s).record(beat)
    if may_have_changed:
        request.app.state.pending.poke()  # more room, or a host back from DOWN
    ack = HeartbeatAck(
        host_state=beat.state.value,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        fence_after_s=fence_leases(request).get(beat.datacentre),
        report_all=may_have_changed,  # its instances may be UNKNOWN: hear about all of them
        lab_loads=host_id in loaded_hosts(request, store),
    )
    return _json(ack)


@router.get("/hosts/{host_id}/assignments", name="agent.assignments", response_model=AssignmentList)
async def assignments(
    host_id: str,
    request: Request,
    store: StoreDep,
    who: PrincipalDep,
    settings: SettingsDep,
    generation: Annotated[int, Query(ge=-1)] = -1,
    wait: Annotated[float, Query(ge=0, le=300)] = 0,
) -> Response:
    """Long-poll: answer as soon as the host's assignment generation differs from
    ``generation``, or after ``wait`` seconds (capped by the server) with the current list."""
    require_agent_for(who, host_id)
    wait = min(wait, settings.max_poll_wait_s)
    if wait > 0 and generation >= 0:  # otherwise the answer is the list, at once
        watch: GenerationWatch = request.app.state.longpoll
        # The watcher's last reading of the host (generations only grow): a newer one is
        # answered at once; an equal one may be stale by one watcher step, so wait (the
        # watcher wakes the request within a step if it has moved).
        current = watch.seen(host_id)
        if current is None:
            current = await run_in_threadpool(store.instances.assignment_generation, host_id)
        if current <= generation:
            await watch.wait(host_id, generation, wait)
    return _json(await run_in_threadpool(store.instances.assignments, host_id))


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
    # A report that changes an instance's state records it in the instance's history:
    # the call's audit event is written in that same transaction.
    with audit.in_transaction(
        request,
        "host",
        who.org_path,
        table=InstanceEventRow.__tablename__,
        status=200 if assignments else 204,
        name_rows=False,
    ):
        outcome = store.instances.apply_status(host_id, body.instances, then_list=assignments)
    if not outcome.changed:
        request.state.audit_skip = True
    if outcome.released:
        request.app.state.pending.poke()
    if outcome.assignments is not None:
        return _json(outcome.assignments)
    return Response(status_code=204)
