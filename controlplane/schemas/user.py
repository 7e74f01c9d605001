"""User requests and the one-time token response."""

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


class UserCreated(BaseModel):
    """The new user and its bearer token (shown only this once)."""

    user: User
    token: str


class WhoAmI(BaseModel):
    """The caller as the API sees it."""

    name: str
    role: Role
    scope: str
