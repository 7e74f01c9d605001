"""``/v1/users`` (create, list, rotate a token, change a role, delete) and ``/v1/whoami``.

A user outside the caller's subtree is reported as not found (no existence leak). The
rules (``domain/auth.py``) are applied by the store to the locked user row, so a change
made meanwhile by someone else is judged as it stands.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response

from controlplane.api.context import StoreDep, UserDep, audit_target
from controlplane.domain.auth import (
    Principal,
    Role,
    User,
    can_see,
    require_role_change,
    require_token_rotation,
    require_user_admin,
    require_user_deletion,
)
from controlplane.domain.errors import NotFound
from controlplane.domain.org import can_see_org
from controlplane.schemas.user import UserCreate, UserCreated, UserToken, UserUpdate, WhoAmI

router = APIRouter(tags=["users"])


class _Judge:
    """Judges the caller against the locked user row (see ``store.user.Authorize``):
    not found outside the caller's subtree, else audited against the user's organisation
    and checked by ``rule``. Remembers the user it judged."""

    def __init__(
        self, request: Request, who: Principal, rule: Callable[[Principal, User], None]
    ) -> None:
        self.request, self.who, self.rule = request, who, rule
        self.user: User | None = None

    def __call__(self, user: User) -> None:
        if not can_see(self.who, user.org_path):
            raise NotFound("user", user.name)
        audit_target(self.request, "user", user.name, user.org_path)
        self.rule(self.who, user)
        self.user = user


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


@router.post("/users/{name}/token", name="user.rotate_token", response_model=UserToken)
def rotate_token(name: str, request: Request, store: StoreDep, who: UserDep) -> UserToken:
    """Revoke the user's token and return a new one once (your own, or of a user you
    manage). The old token stops working at once on this replica and within
    ``auth_cache_ttl_s`` on the others."""
    judge = _Judge(request, who, require_token_rotation)
    token = store.users.rotate_token(name, authorize=judge)
    assert judge.user is not None  # the store judged the locked row
    return UserToken(user=judge.user, token=token)


@router.patch("/users/{name}", name="user.update", response_model=User)
def update_user(
    name: str, body: UserUpdate, request: Request, store: StoreDep, who: UserDep
) -> User:
    """Change a user's role: only of users you manage, only to roles you may grant, and
    never the last platform-admin's."""
    role = Role(body.role.value)
    judge = _Judge(request, who, lambda caller, user: require_role_change(caller, user, role))
    return store.users.set_role(name, role, authorize=judge)


@router.delete("/users/{name}", name="user.delete", status_code=204)
def delete_user(name: str, request: Request, store: StoreDep, who: UserDep) -> Response:
    """Delete a user you manage (not yourself, never the last platform-admin); the audit
    trail keeps its name."""
    store.users.delete(name, authorize=_Judge(request, who, require_user_deletion))
    return Response(status_code=204)
