"""User requests (create, change the role) and the one-time token responses."""

from __future__ import annotations

from pydantic import BaseModel

from controlplane.domain.auth import Role, User, UserRole
from controlplane.domain.names import Code, Name
from controlplane.schemas.common import Strict


class UserCreate(Strict):
    """A user with a role scoped to ``organisation``'s subtree."""

    name: Name
    role: UserRole
    organisation: Code


class UserUpdate(Strict):
    """A user's new role (``PATCH /v1/users/{name}``)."""

    role: UserRole


class UserToken(BaseModel):
    """A user and its new bearer token (shown only this once)."""

    user: User
    token: str


class UserCreated(UserToken):
    """The new user and its bearer token (shown only this once)."""


class WhoAmI(BaseModel):
    """The caller as the API sees it."""

    name: str
    role: Role
    scope: str
