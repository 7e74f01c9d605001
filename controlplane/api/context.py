"""Per-request context: the store, the request id and the authenticated principal.

The dependencies are ``async`` and do no blocking work on their hot path, so FastAPI
runs them on the event loop instead of handing each to the thread pool. Authentication
reaches the database (in the thread pool) only when the store's principal cache does not
hold the token.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from controlplane.domain.auth import Principal
from controlplane.domain.errors import Forbidden, Unauthenticated
from controlplane.domain.tokens import hash_token
from controlplane.settings import Settings
from controlplane.store import Store

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def new_request_id(offered: str | None) -> str:
    """Honour a well-formed ``X-Request-Id`` from the client, else make one."""
    if offered and _REQUEST_ID.match(offered):
        return offered
    return f"req-{uuid.uuid4()}"


async def get_store(request: Request) -> Store:
    """The store this app was created with."""
    store: Store = request.app.state.store
    return store


async def get_settings(request: Request) -> Settings:
    """The settings this app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def request_id(request: Request) -> str:
    """The id of this request (set by the middleware)."""
    rid: str = request.state.request_id
    return rid


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>`` (Unauthenticated without one)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "missing bearer token; log in with `govcloud login --url URL --token TOKEN`"
        )
    return token.strip()


async def principal(request: Request, store: Annotated[Store, Depends(get_store)]) -> Principal:
    """Authenticate ``Authorization: Bearer <token>`` (cached principals first); the
    token's digest is kept in ``request.state.token_digest``."""
    token = bearer_token(request)
    digest = hash_token(token)
    who = store.users.cache.get(digest)
    if who is None:
        who = await run_in_threadpool(store.users.authenticate, token)
    request.state.principal = who
    request.state.token_digest = digest
    return who


async def user(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """A person (not a host agent)."""
    if who.is_agent:
        raise Forbidden("host agents may only use the /v1/agent endpoints")
    return who


#: Organisation paths remembered per app (a bound, far above the number of organisations).
MAX_ORG_PATHS = 20_000


def org_path(request: Request, store: Store, code: str) -> str:
    """The materialised path of organisation ``code`` (NotFound if there is none).

    Organisations are never moved, renamed or deleted, so each app remembers a path once
    it has read it (unknown codes are not remembered: they always reach the database).
    """
    paths: dict[str, str] = request.app.state.org_paths
    path = paths.get(code)
    if path is None:
        path = store.orgs.get(code).path
        if len(paths) < MAX_ORG_PATHS:
            paths[code] = path
    return path


def audit_target(
    request: Request, kind: str, ident: str, org: str | None = None, *, ids: list[str] | None = None
) -> None:
    """Tell the audit middleware what a mutating call acted on. ``ids``: every object it
    acted on, when ``ident`` (at most 200 characters) cannot name them all; they go into
    the event's details."""
    request.state.audit_target = (kind, ident, org)
    if ids is not None:
        request.state.audit_details = {"ids": ids}


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RequestId = Annotated[str, Depends(request_id)]
UserDep = Annotated[Principal, Depends(user)]
PrincipalDep = Annotated[Principal, Depends(principal)]
