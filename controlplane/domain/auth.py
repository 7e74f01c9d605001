"""Principals, roles and the authorisation rules.

A principal is a user (with a role scoped to an organisation subtree) or a host agent
(which may act only for its own host). The rules are pure functions so every route
applies the same ones and unit tests can cover them exhaustively.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from controlplane.domain.errors import Forbidden
from controlplane.domain.names import Code, Name
from controlplane.domain.org import within


class Role(StrEnum):
    """User roles, from most to least powerful."""

    PLATFORM_ADMIN = "platform-admin"
    MINISTRY_ADMIN = "ministry-admin"
    #: Runs the Cloud Open Lab: approves trials and extensions, signs certifications.
    LAB_OPERATOR = "lab-operator"
    MEMBER = "member"
    AUDITOR = "auditor"
    AGENT = "agent"


class UserRole(StrEnum):
    """The roles a person can be given (``agent`` belongs to host credentials only)."""

    PLATFORM_ADMIN = Role.PLATFORM_ADMIN.value
    MINISTRY_ADMIN = Role.MINISTRY_ADMIN.value
    LAB_OPERATOR = Role.LAB_OPERATOR.value
    MEMBER = Role.MEMBER.value
    AUDITOR = Role.AUDITOR.value


class Principal(BaseModel):
    """The authenticated caller of a request."""

    name: str
    role: Role
    org_path: str
    host_id: str | None = None

    @property
    def is_agent(self) -> bool:
        """Agents authenticate with a host credential."""
        return self.role is Role.AGENT


class User(BaseModel):
    """A user account (its token is stored only as a hash)."""

    name: Name
    role: Role
    organisation: Code
    org_path: str


def can_see(principal: Principal, org_path: str) -> bool:
    """Users see resources in their subtree; agents see nothing through user routes."""
    return not principal.is_agent and within(org_path, principal.org_path)


def require_platform_admin(principal: Principal) -> None:
    """Infrastructure changes (data centres, hosts, flavors, images) are the operator's."""
    if principal.role is not Role.PLATFORM_ADMIN:
        raise Forbidden(
            f"{principal.role.value} {principal.name!r} may not change infrastructure; "
            "ask a platform-admin",
            role=principal.role.value,
        )


def require_infra_reader(principal: Principal) -> None:
    """Hosts are visible to operators and auditors at the root scope only."""
    if (
        principal.is_agent
        or "/" in principal.org_path
        or principal.role
        not in (
            Role.PLATFORM_ADMIN,
            Role.AUDITOR,
        )
    ):
        raise Forbidden(
            "only platform-admins and root-scoped auditors may see hosts",
            role=principal.role.value,
        )


def require_mutate(principal: Principal, org_path: str) -> None:
    """Auditors never mutate; others only inside their subtree."""
    if principal.is_agent or principal.role is Role.AUDITOR:
        raise Forbidden(
            f"{principal.role.value} {principal.name!r} is read-only",
            role=principal.role.value,
        )
    if not within(org_path, principal.org_path):
        raise Forbidden(
            f"{principal.name!r} is scoped to {principal.org_path!r} and may not act on "
            f"{org_path!r}",
            scope=principal.org_path,
            target=org_path,
        )


#: The roles a role may give, and so the users it may manage, within its scope.
GRANTS: dict[Role, tuple[Role, ...]] = {
    Role.PLATFORM_ADMIN: tuple(Role(r.value) for r in UserRole),
    Role.MINISTRY_ADMIN: (Role.MEMBER, Role.AUDITOR),
}


def require_user_admin(
    principal: Principal, org_path: str, role: Role, *, field: str = "role"
) -> None:
    """Platform-admins manage any user; ministry-admins manage member and auditor users
    below them. ``role`` is the role given (``field`` ``role``) or the one a managed user
    holds (``user.role``), so nobody gives or takes a role above what they may grant."""
    require_mutate(principal, org_path)
    allowed = GRANTS.get(principal.role, ())
    if role in allowed:
        return
    limit = [r.value for r in allowed]
    may = f"only users with role {' or '.join(limit)}" if limit else "no users"
    raise Forbidden(
        f"{field}: {principal.role.value} {principal.name!r} may manage {may}, not {role.value}",
        field=field,
        limit=limit,
        value=role.value,
        role=principal.role.value,
    )


def require_token_rotation(principal: Principal, user: User) -> None:
    """Everyone may rotate their own token; user admins also those of users they manage."""
    if principal.name != user.name:
        require_user_admin(principal, user.org_path, user.role, field="user.role")


def require_role_change(principal: Principal, user: User, role: Role) -> None:
    """Change a role only of a user one manages, and only to a role one may grant."""
    require_user_admin(principal, user.org_path, user.role, field="user.role")
    require_user_admin(principal, user.org_path, role)


def require_user_deletion(principal: Principal, user: User) -> None:
    """Delete only users one manages, and never oneself (the session would be cut off
    with no one to undo it)."""
    if principal.name == user.name:
        raise Forbidden(
            f"name: {principal.name!r} may not delete their own user; ask another admin",
            field="name",
            limit="another user than the caller",
            value=user.name,
        )
    require_user_admin(principal, user.org_path, user.role, field="user.role")


def require_agent_for(principal: Principal, host_id: str) -> None:
    """An agent may report only for its own host."""
    if not principal.is_agent or principal.host_id != host_id:
        raise Forbidden(
            f"{principal.name!r} may not act for host {host_id}",
            host=host_id,
        )
