"""``/v1/instances``: create (one or ``count``), list, show, placement explanation,
start/stop/reboot, resize, delete, action history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from controlplane.api import audit
from controlplane.api.context import RequestId, StoreDep, UserDep, audit_target, org_path
from controlplane.domain.auth import Principal, require_mutate
from controlplane.domain.errors import NotFound
from controlplane.domain.instance import Instance, InstanceAction, InstanceState
from controlplane.domain.org import can_see_org
from controlplane.schemas.common import Page
from controlplane.schemas.instance import (
    InstanceBatch,
    InstanceCreate,
    InstancePlacement,
    InstanceResize,
)
from controlplane.store import Store
from controlplane.store.instance import Hints

router = APIRouter(prefix="/instances", tags=["instances"])


@router.get("", name="instance.list", response_model=Page[Instance])
def list_instances(
    store: StoreDep,
    who: UserDep,
    state: InstanceState | None = None,
    datacentre: str | None = None,
    host: str | None = None,
    org: Annotated[str | None, Query(description="ministry, agency or project code")] = None,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    marker: str | None = None,
) -> Page[Instance]:
    """Instances the caller may see, oldest first; DELETED ones only with ``state``."""
    items = store.instances.list(
        who.org_path,
        state=state.value if state else None,
        datacentre=datacentre,
        host=host,
        org=org,
        name=name,
        limit=limit,
        marker=marker,
    )
    return Page(items=items, next_marker=items[-1].id if len(items) == limit else None)


def _create(store: Store, body: InstanceCreate, who: Principal, rid: str) -> list[Instance]:
    return store.instances.create_many(
        name=body.name,
        project=body.project,
        flavor=body.flavor,
        image=body.image,
        datacentre=body.datacentre,
        actor=who.name,
        request_id=rid,
        count=body.count,
        all_or_nothing=body.all_or_nothing,
        server_group=body.server_group,
        hints=Hints(
            required_traits=frozenset(body.required_traits),
            forbidden_traits=frozenset(body.forbidden_traits),
            policy=body.policy,
        ),
    )


@router.post("", name="instance.create", status_code=202, response_model=Instance | InstanceBatch)
def create_instance(
    body: InstanceCreate, request: Request, store: StoreDep, who: UserDep, rid: RequestId
) -> Response:
    """Create and place; 202 because the agent builds it asynchronously.

    With ``count`` > 1 the answer is an ``InstanceBatch`` of every instance created.
    A single instance's audit event is written in the transaction that creates it.
    """
    path = org_path(request, store, body.project)
    if not can_see_org(path, who.org_path):  # as if it did not exist: no leak
        raise NotFound("org", body.project)
    audit_target(request, "instance", body.name, path)
    require_mutate(who, path)
    if body.count == 1:
        with audit.in_transaction(request, "instance", path, table="instances", status=202):
            created = _create(store, body, who, rid)
        audit_target(request, "instance", created[0].id, path)
        answer: Instance | InstanceBatch = created[0]
    else:
        created = _create(store, body, who, rid)
        ids = [i.id for i in created]
        audit_target(request, "instance", ",".join(ids)[:200], path, ids=ids)
        placed = sum(i.state is not InstanceState.PENDING for i in created)
        answer = InstanceBatch(items=created, placed=placed, pending=len(created) - placed)
    # The models are already valid: render them once, without FastAPI's re-validation.
    return Response(answer.model_dump_json(), status_code=202, media_type="application/json")


@router.get("/{instance_id}", name="instance.show", response_model=Instance)
def show_instance(instance_id: str, store: StoreDep, who: UserDep) -> Instance:
    """One instance."""
    return store.instances.get(instance_id, who.org_path)


@router.get("/{instance_id}/placement", name="instance.placement", response_model=InstancePlacement)
def instance_placement(instance_id: str, store: StoreDep, who: UserDep) -> InstancePlacement:
    """Where the instance is, and the scheduler's last explanation (hosts evaluated,
    rejected per check with examples, which dimension ran out where)."""
    inst = store.instances.get(instance_id, who.org_path)
    return InstancePlacement(
        instance_id=inst.id,
        name=inst.name,
        state=inst.state,
        datacentre=inst.datacentre,
        host_name=inst.host_name,
        pending_reason=inst.pending_reason,
        explanation=inst.placement,
    )


@router.get("/{instance_id}/actions", name="instance.actions", response_model=list[InstanceAction])
def instance_actions(instance_id: str, store: StoreDep, who: UserDep) -> list[InstanceAction]:
    """What was asked of this instance, by whom, and how it ended."""
    return store.instances.actions(instance_id, who.org_path)


def _may_change(instance_id: str, request: Request, store: Store, who: Principal) -> Instance:
    """Name the audit target and require the right to change the instance (404 if unseen)."""
    current = store.instances.get(instance_id, who.org_path)
    audit_target(request, "instance", instance_id, current.org_path)
    require_mutate(who, current.org_path)
    return current


def _act(
    action: str, instance_id: str, request: Request, store: Store, who: Principal, rid: str
) -> Instance:
    _may_change(instance_id, request, store, who)
    return store.instances.request(
        instance_id, action, scope=who.org_path, actor=who.name, request_id=rid
    )


@router.post(
    "/{instance_id}/start", name="instance.start", status_code=202, response_model=Instance
)
def start(
    instance_id: str, request: Request, store: StoreDep, who: UserDep, rid: RequestId
) -> Instance:
    """Power on a STOPPED instance."""
    return _act("start", instance_id, request, store, who, rid)


@router.post("/{instance_id}/stop", name="instance.stop", status_code=202, response_model=Instance)
def stop(
    instance_id: str, request: Request, store: StoreDep, who: UserDep, rid: RequestId
) -> Instance:
    """Power off a RUNNING instance (it keeps its host and its claim)."""
    return _act("stop", instance_id, request, store, who, rid)


@router.post(
    "/{instance_id}/reboot", name="instance.reboot", status_code=202, response_model=Instance
)
def reboot(
    instance_id: str, request: Request, store: StoreDep, who: UserDep, rid: RequestId
) -> Instance:
    """Reboot a RUNNING instance."""
    return _act("reboot", instance_id, request, store, who, rid)


@router.post(
    "/{instance_id}/resize", name="instance.resize", status_code=202, response_model=Instance
)
def resize(
    instance_id: str,
    body: InstanceResize,
    request: Request,
    store: StoreDep,
    who: UserDep,
    rid: RequestId,
) -> Instance:
    """Give a STOPPED instance another flavor, in place on its host (no migration).

    Quota and host usage move by the difference at once (403 ``quota.exceeded`` or 409
    ``host.insufficient_capacity`` if the larger size does not fit, and nothing changes);
    the agent redefines the shut-off domain, which finishes the ``resize`` action.
    """
    before = _may_change(instance_id, request, store, who).resources
    resized = store.instances.resize(
        instance_id, body.flavor, scope=who.org_path, actor=who.name, request_id=rid
    )
    if before.short_of(resized.resources):  # some dimension shrank: room was freed
        request.app.state.pending.poke()
    return resized


@router.delete("/{instance_id}", name="instance.delete", status_code=202, response_model=Instance)
def delete(
    instance_id: str, request: Request, store: StoreDep, who: UserDep, rid: RequestId
) -> Instance:
    """Delete: DELETING until the agent has removed the domain, then DELETED."""
    deleted = _act("delete", instance_id, request, store, who, rid)
    if deleted.state is InstanceState.DELETED:
        request.app.state.pending.poke()
    return deleted
