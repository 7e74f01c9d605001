"""Error responses: every failure becomes ``{code, message, details, request_id}``.

Domain errors map to 4xx by class; request validation errors name each bad field with
its value and the rule; anything unexpected is logged with its traceback and returned as
a 500 with only the request id, never a stack trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from controlplane.domain import errors as e
from controlplane.domain.quota import QuotaExceeded

log = logging.getLogger(__name__)

STATUS: dict[type[e.GovcloudError], int] = {
    e.NotFound: 404,
    e.AlreadyExists: 409,
    e.InvalidState: 409,
    e.Conflict: 409,
    e.InvalidRequest: 400,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    QuotaExceeded: 403,  # as Nova: the request is refused by policy, not malformed
}


def error_response(
    request: Request, status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    """Build the standard error body with the request id."""
    rid = getattr(request.state, "request_id", "")
    body = {"code": code, "message": message, "details": details or {}, "request_id": rid}
    return JSONResponse(body, status_code=status, headers={"X-Request-Id": rid})


def _status_of(exc: e.GovcloudError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def _field(loc: tuple[Any, ...]) -> str:
    # Drop only the leading location ("body", "query", ...): a field may itself be called
    # "path" (images) and must still be named.
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _short(value: Any) -> Any:
    """A JSON-safe, bounded copy of an offending value for the error body."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    try:
        text = json.dumps(value, default=str, allow_nan=False)
    except ValueError:  # NaN or Infinity (Python's json accepts them) is not valid JSON
        text = json.dumps(str(value))
    return json.loads(text) if len(text) <= 200 else text[:200] + "..."


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(e.GovcloudError)
    async def _domain(request: Request, exc: e.GovcloudError) -> JSONResponse:
        return error_response(request, _status_of(exc), exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                return error_response(
                    request,
                    400,
                    "request.malformed_json",
                    f"request body is not valid JSON: {err.get('ctx', {}).get('error', '')}",
                    {"position": err.get("loc", [None, None])[-1]},
                )
            problems.append(
                {
                    "field": _field(tuple(err.get("loc", ()))),
                    "message": err.get("msg", ""),
                    "value": _short(err.get("input")),
                    **({"limit": _short(err["ctx"])} if err.get("ctx") else {}),
                }
            )
        summary = "; ".join(
            f"{p['field']}: {p['message']} (got {p['value']!r})" for p in problems[:5]
        )
        return error_response(
            request, 422, "request.invalid", f"invalid request: {summary}", {"errors": problems}
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "route.not_found", 405: "route.method_not_allowed"}.get(
            exc.status_code, "http.error"
        )
        return error_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(
            request, 500, "internal.error", "internal error; report the request id to the operators"
        )
