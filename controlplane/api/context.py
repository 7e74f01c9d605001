"""Per-request context: the store, the request id and the authenticated principal."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import Depends, Request

from controlplane.domain.auth import Principal
from controlplane.domain.errors import Forbidden, Unauthenticated
from controlplane.settings import Settings
from controlplane.store import Store

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def new_request_id(offered: str | None) -> str:
    """Honour a well-formed ``X-Request-Id`` from the client, else make one."""
    if offered and _REQUEST_ID.match(offered):
        return offered
    return f"req-{uuid.uuid4()}"


def get_store(request: Request) -> Store:
    """The store this app was created with."""
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    """The settings this app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def request_id(request: Request) -> str:
    """The id of this request (set by the middleware)."""
    rid: str = request.state.request_id
    return rid


def principal(request: Request, store: Annotated[Store, Depends(get_store)]) -> Principal:
    """Authenticate ``Authorization: Bearer <token>``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "missing bearer token; log in with `govcloud login --url URL --token TOKEN`"
        )
    who = store.users.authenticate(token.strip())
    request.state.principal = who
    return who


def user(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """A person (not a host agent)."""
    if who.is_agent:
        raise Forbidden("host agents may only use the /v1/agent endpoints")
    return who


def audit_target(request: Request, kind: str, ident: str, org: str | None = None) -> None:
    """Tell the audit middleware what a mutating call acted on."""
    request.state.audit_target = (kind, ident, org)


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RequestId = Annotated[str, Depends(request_id)]
UserDep = Annotated[Principal, Depends(user)]
PrincipalDep = Annotated[Principal, Depends(principal)]
