"""Request ids and the audit trail, as one pure ASGI middleware.

Every response carries ``X-Request-Id``. Every mutating call (POST/PUT/PATCH/DELETE),
successful or not, appends one audit event: who, which organisation, what action on which
target, the outcome and status, when, and the request id. Agent heartbeats are liveness
telemetry and are not audited (they would drown the trail); a route may also mark a call
as not worth auditing when it changed nothing.

The event is committed before the last byte of the response is sent, so a caller that
has its answer can read the event. A hot route may stage its success event with
:func:`in_transaction`: the store then writes it inside the transaction that makes the
change (one commit instead of two), and the middleware writes nothing more unless the
call ends with another status than the one staged (then that outcome is appended too).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.api.context import audit_target, new_request_id
from controlplane.domain.audit import AuditEvent
from controlplane.domain.auth import Principal
from controlplane.store import Store
from controlplane.store.audit import StagedAudit
from controlplane.store.org import ROOT_CODE

log = logging.getLogger(__name__)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HEADER = b"x-request-id"


def _clip(value: str, width: int) -> str:
    """Fit caller-supplied text into its audit column (PostgreSQL refuses over-long values
    and NULs, and the event must not be lost because of them)."""
    value = value.replace("\x00", "\\x00")
    return value if len(value) <= width else value[: width - 3] + "..."


def _event(request: Request, status: int, store: Store) -> AuditEvent:
    """The audit event of ``request`` answered with ``status``."""
    route = request.scope.get("route")
    path = request.scope.get("path", "")
    action = getattr(route, "name", None) or f"{request.method} {path}"
    state = request.scope.get("state", {})
    who: Principal | None = state.get("principal")
    kind, ident, org = state.get("audit_target", (None, None, None))
    if ident is None:
        ident = str(next(iter(request.scope.get("path_params", {}).values()), ""))
    return AuditEvent(
        id=0,
        time=store.clock(),
        request_id=state.get("request_id", ""),
        actor=_clip(who.name if who else "anonymous", 63),
        actor_role=who.role.value if who else "",
        # Anonymous calls (registration, bad credentials) belong to the root, where
        # platform-admins and root auditors can read them.
        organisation=org or (who.org_path if who else ROOT_CODE),
        action=_clip(action, 64),
        target_type=_clip(kind or action.split(".")[0], 32),
        target_id=_clip(ident, 200),
        outcome="success" if status < 400 else "failure",
        status_code=status,
        details={"method": request.method, "path": path, **state.get("audit_details", {})},
    )


@contextmanager
def in_transaction(
    request: Request, kind: str, org: str, *, table: str, status: int, name_rows: bool = True
) -> Iterator[StagedAudit]:
    """Stage the success event (``status``) of this call, to be written by the first
    transaction that inserts rows of ``table``; with ``name_rows`` the event names those
    rows as its target, else it keeps the target the route gave (``audit_target``). Use
    around the store call, in the thread that makes it."""
    store: Store = request.app.state.store

    def build(ids: list[str]) -> AuditEvent:
        if name_rows:
            audit_target(request, kind, ",".join(ids)[:200], org)
        return _event(request, status, store)

    staged = StagedAudit(table=table, build=build)
    request.state.audit_staged = staged
    with store.audit.within(staged):
        yield staged


class AuditMiddleware:
    """Gives each request its id (``X-Request-Id`` in, or a new one) and audits it."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; audit it before its response's last chunk leaves."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next((v for k, v in scope.get("headers", ()) if k == _HEADER), None)
        rid = new_request_id(offered.decode("latin-1") if offered is not None else None)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        raw_rid = rid.encode("latin-1")
        request = Request(scope)
        audited = scope.get("method") not in MUTATING
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status, audited
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER]
                headers.append((_HEADER, raw_rid))
                message = {**message, "headers": headers}
            elif (
                message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and not audited
            ):
                audited = True
                await self._record(request, status)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # An unexpected error becomes a 500 outside this middleware: audit it as one.
            if not audited:
                audited = True
                await self._record(request, 500)
            raise
        if not audited:  # the app answered without a final body message
            await self._record(request, status)

    async def _record(self, request: Request, status: int) -> None:
        state = request.scope.get("state", {})
        if state.get("audit_skip", False):
            return
        staged: StagedAudit | None = state.get("audit_staged")
        written = staged.committed if staged is not None else None
        if written is not None and written.status_code == status:
            return  # written in the transaction that made the change
        event = _event(request, status, self.store)
        try:
            await run_in_threadpool(self.store.audit.append, event)
        except Exception:  # the call itself is answered; losing its audit must be loud
            log.exception("could not write audit event for %s", event.request_id)


def install(app: FastAPI) -> None:
    """Add the middleware to ``app`` (``app.state.store`` must be set)."""
    app.add_middleware(AuditMiddleware, store=app.state.store)
