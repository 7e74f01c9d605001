"""``/metrics``: Prometheus exposition of the control plane's collectors (no auth, as usual
for scrape targets; put it behind the network policy of the monitoring system)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["metrics"])


@router.get("/metrics", name="metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Render every registered collector."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
