"""``/v1/server-groups``: create, list, show, delete (project-scoped like instances)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from controlplane.api.context import StoreDep, UserDep, audit_target
from controlplane.domain.auth import require_mutate
from controlplane.domain.errors import NotFound
from controlplane.domain.org import can_see_org
from controlplane.domain.server_group import ServerGroup
from controlplane.schemas.server_group import ServerGroupCreate

router = APIRouter(prefix="/server-groups", tags=["server-groups"])


@router.post("", name="server_group.create", status_code=201, response_model=ServerGroup)
def create_group(
    body: ServerGroupCreate, request: Request, store: StoreDep, who: UserDep
) -> ServerGroup:
    """A new, empty group; instances join it at creation (``server_group``)."""
    project = store.orgs.get(body.project)
    if not can_see_org(project.path, who.org_path):  # as if it did not exist: no leak
        raise NotFound("org", body.project)
    audit_target(request, "server_group", body.name, project.path)
    require_mutate(who, project.path)
    created = store.server_groups.create(
        name=body.name,
        project=body.project,
        policy=body.policy,
        max_per_host=body.max_per_host,
        actor=who.name,
    )
    audit_target(request, "server_group", created.id, project.path)
    return created


@router.get("", name="server_group.list", response_model=list[ServerGroup])
def list_groups(store: StoreDep, who: UserDep, project: str | None = None) -> list[ServerGroup]:
    """Groups the caller may see (optionally one project's)."""
    return store.server_groups.list(who.org_path, project)


@router.get("/{group_id}", name="server_group.show", response_model=ServerGroup)
def show_group(group_id: str, store: StoreDep, who: UserDep) -> ServerGroup:
    """One group with its live members."""
    return store.server_groups.get(group_id, who.org_path)


@router.delete("/{group_id}", name="server_group.delete", status_code=204)
def delete_group(group_id: str, request: Request, store: StoreDep, who: UserDep) -> None:
    """Delete an empty group (409 ``server_group.in_use`` while it has live members)."""
    group = store.server_groups.get(group_id, who.org_path)
    audit_target(request, "server_group", group.id, group.org_path)
    require_mutate(who, group.org_path)
    store.server_groups.delete(group_id, who.org_path)
