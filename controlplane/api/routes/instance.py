"""``/v1/instances``: create, list, show, start/stop/reboot, resize, delete, action history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from controlplane.api.context import RequestId, StoreDep, UserDep, audit_target
from controlplane.domain.auth import Principal, require_mutate
from controlplane.domain.errors import NotFound
from controlplane.domain.instance import Instance, InstanceAction, InstanceState
from controlplane.domain.org import can_see_org
from controlplane.schemas.common import Page
from controlplane.schemas.instance import InstanceCreate, InstanceResize
from controlplane.store import Store

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


@router.post("", name="instance.create", status_code=202, response_model=Instance)
def create_instance(
    body: InstanceCreate, request: Request, store: StoreDep, who: UserDep, rid: RequestId
) -> Instance:
    """Create and place; 202 because the agent builds it asynchronously."""
    project = store.orgs.get(body.project)
    if not can_see_org(project.path, who.org_path):  # as if it did not exist: no leak
        raise NotFound("org", body.project)
    audit_target(request, "instance", body.name, project.path)
    require_mutate(who, project.path)
    created = store.instances.create(
        name=body.name,
        project=body.project,
        flavor=body.flavor,
        image=body.image,
        datacentre=body.datacentre,
        actor=who.name,
        request_id=rid,
    )
    audit_target(request, "instance", created.id, project.path)
    return created


@router.get("/{instance_id}", name="instance.show", response_model=Instance)
def show_instance(instance_id: str, store: StoreDep, who: UserDep) -> Instance:
    """One instance."""
    return store.instances.get(instance_id, who.org_path)


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
