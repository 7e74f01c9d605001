"""Request ids and the audit trail, as one middleware.

Every response carries ``X-Request-Id``. Every mutating call (POST/PUT/PATCH/DELETE),
successful or not, appends one audit event: who, which organisation, what action on which
target, the outcome and status, when, and the request id. Agent heartbeats are liveness
telemetry and are not audited (they would drown the trail); a route may also mark a call
as not worth auditing when it changed nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from controlplane.api.context import new_request_id
from controlplane.domain.audit import AuditEvent
from controlplane.domain.auth import Principal
from controlplane.store import Store
from controlplane.store.org import ROOT_CODE

log = logging.getLogger(__name__)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _clip(value: str, width: int) -> str:
    """Fit caller-supplied text into its audit column (PostgreSQL refuses over-long values
    and NULs, and the event must not be lost because of them)."""
    value = value.replace("\x00", "\\x00")
    return value if len(value) <= width else value[: width - 3] + "..."


def _event(request: Request, response: Response, store: Store) -> AuditEvent | None:
    if request.method not in MUTATING or getattr(request.state, "audit_skip", False):
        return None
    route = request.scope.get("route")
    action = getattr(route, "name", None) or f"{request.method} {request.url.path}"
    who: Principal | None = getattr(request.state, "principal", None)
    kind, ident, org = getattr(request.state, "audit_target", (None, None, None))
    if ident is None:
        ident = str(next(iter(request.path_params.values()), ""))
    return AuditEvent(
        id=0,
        time=store.clock(),
        request_id=request.state.request_id,
        actor=_clip(who.name if who else "anonymous", 63),
        actor_role=who.role.value if who else "",
        # Anonymous calls (registration, bad credentials) belong to the root, where
        # platform-admins and root auditors can read them.
        organisation=org or (who.org_path if who else ROOT_CODE),
        action=_clip(action, 64),
        target_type=_clip(kind or action.split(".")[0], 32),
        target_id=_clip(ident, 200),
        outcome="success" if response.status_code < 400 else "failure",
        status_code=response.status_code,
        details={"method": request.method, "path": request.url.path},
    )


def install(app: FastAPI) -> None:
    """Add the middleware to ``app``."""

    @app.middleware("http")
    async def _request_id_and_audit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.request_id = new_request_id(request.headers.get("x-request-id"))
        try:
            response = await call_next(request)
        except Exception:
            # An unexpected error becomes a 500 outside this middleware: audit it as one.
            await _record(request, Response(status_code=500))
            raise
        response.headers["X-Request-Id"] = request.state.request_id
        await _record(request, response)
        return response


async def _record(request: Request, response: Response) -> None:
    store: Store = request.app.state.store
    event = _event(request, response, store)
    if event is not None:
        try:
            await run_in_threadpool(store.audit.append, event)
        except Exception:  # the call itself is answered; losing its audit must be loud
            log.exception("could not write audit event for %s", event.request_id)
