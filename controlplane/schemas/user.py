"""User requests and the one-time token response."""

from __future__ import annotations

from pydantic import BaseModel, field_validator

from controlplane.domain.auth import Role, User
from controlplane.domain.names import Code, Name
from controlplane.schemas.common import Strict


class UserCreate(Strict):
    """A user with a role scoped to ``organisation``'s subtree."""

    name: Name
    role: Role
    organisation: Code

    @field_validator("role")
    @classmethod
    def _people_only(cls, role: Role) -> Role:
        if role is Role.AGENT:
            raise ValueError("'agent' is for host credentials; enrol hosts with a bootstrap token")
        return role


class UserCreated(BaseModel):
    """The new user and its bearer token (shown only this once)."""

    user: User
    token: str


class WhoAmI(BaseModel):
    """The caller as the API sees it."""

    name: str
    role: Role
    scope: str
