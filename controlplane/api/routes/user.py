"""``/v1/users`` and ``/v1/whoami``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from controlplane.api.context import StoreDep, UserDep, audit_target
from controlplane.domain.auth import Role, User, require_user_admin
from controlplane.domain.errors import NotFound
from controlplane.domain.org import can_see_org
from controlplane.schemas.user import UserCreate, UserCreated, WhoAmI

router = APIRouter(tags=["users"])


@router.get("/whoami", name="user.whoami", response_model=WhoAmI)
def whoami(who: UserDep) -> WhoAmI:
    """The authenticated caller, its role and scope."""
    return WhoAmI(name=who.name, role=who.role, scope=who.org_path)


@router.get("/users", name="user.list", response_model=list[User])
def list_users(store: StoreDep, who: UserDep) -> list[User]:
    """Users in the caller's subtree."""
    return store.users.list(who.org_path)


@router.post("/users", name="user.create", status_code=201, response_model=UserCreated)
def create_user(body: UserCreate, request: Request, store: StoreDep, who: UserDep) -> UserCreated:
    """Create a user and return its token once."""
    org = store.orgs.get(body.organisation)
    if not can_see_org(org.path, who.org_path):  # as if it did not exist: no leak
        raise NotFound("org", body.organisation)
    audit_target(request, "user", body.name, org.path)
    role = Role(body.role.value)
    require_user_admin(who, org.path, role)
    created, token = store.users.create(body.name, role, body.organisation)
    return UserCreated(user=created, token=token)
