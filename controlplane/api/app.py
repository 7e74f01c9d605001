"""``create_app(settings, store)``: the FastAPI application, with no global state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from controlplane.api import audit, errors
from controlplane.api.routes import ROUTERS, dashboard, metrics
from controlplane.metrics.quota import QuotaCollector
from controlplane.reconciler.pending import PendingLoop
from controlplane.settings import Settings
from controlplane.store import Store

API_VERSION = "0.1.0"


def create_app(settings: Settings, store: Store) -> FastAPI:
    """Build the API over ``store``; background loops run while the app is served."""
    pending = PendingLoop(store, settings.pending_retry_interval_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.run_loops:
            pending.start()
        try:
            yield
        finally:
            pending.stop()

    app = FastAPI(
        title="govcloud",
        version=API_VERSION,
        description="Private-cloud IaaS control plane for consolidated government data centres",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.pending = pending
    if settings.admin_token:
        store.users.ensure_admin(settings.admin_token)
    errors.install(app)
    audit.install(app)
    for router in ROUTERS:
        app.include_router(router, prefix="/v1")
    app.state.metrics = CollectorRegistry()
    app.state.metrics.register(QuotaCollector(store))
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    return app
