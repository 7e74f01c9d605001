"""API request metrics (per replica), recorded by an ASGI middleware.

- ``govcloud_api_request_duration_seconds{method,route}``: latency histogram;
- ``govcloud_api_requests_total{method,route,status}``: every answered request;
- ``govcloud_api_request_errors_total{method,route,status}``: those answered >= 400.

``route`` is the matched route *template* (``/v1/instances/{instance_id}``), never the raw
path, and ``unmatched`` when no route matched (404 on unknown paths), so label cardinality
is bounded by the routing table. The agent long-poll (``.../assignments``) legitimately
lasts up to its ``wait``; exclude it from latency objectives.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ApiMetrics:
    """The API instruments, registered on one app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "govcloud_api_request_duration_seconds",
            "API request latency by method and route template",
            ["method", "route"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "govcloud_api_requests",
            "API requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.errors = Counter(
            "govcloud_api_request_errors",
            "API requests answered with a status >= 400",
            ["method", "route", "status"],
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one answered request."""
        self.duration.labels(method, route).observe(seconds)
        self.requests.labels(method, route, str(status)).inc()
        if status >= 400:
            self.errors.labels(method, route, str(status)).inc()


def route_template(scope: Scope) -> str:
    """The matched route's full path template (router prefix included), or ``unmatched``.

    Recent FastAPI versions keep an included router's routes unprefixed and put the
    effective (prefixed) route in ``scope["effective_route_context"]``; older ones put the
    prefixed route in ``scope["route"]``. FastAPI removes the effective context once the
    route has answered, so the middleware reads it when the response starts.
    """
    fastapi_scope = scope.get("fastapi")
    effective = (
        fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
    )
    for candidate in (effective, scope.get("route")):
        path = getattr(candidate, "path", None)
        if isinstance(path, str):
            return path
    return UNMATCHED


class ApiMetricsMiddleware:
    """Times every HTTP request and records it by route template and status."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, capturing the response status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        route: str | None = None

        async def capture(message: Message) -> None:
            nonlocal status, route
            if message["type"] == "http.response.start":
                status = int(message["status"])
                route = route_template(scope)
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            method = str(scope.get("method", "GET"))
            template = route if route is not None else route_template(scope)
            self.metrics.observe(method, template, status, time.perf_counter() - started)
