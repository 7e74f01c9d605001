"""``create_app(settings, store)``: the FastAPI application, with no global state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from controlplane.api import audit, errors
from controlplane.api.routes import ROUTERS, dashboard, metrics
from controlplane.api.routes import lab as lab_routes
from controlplane.api.routes import maintenance as maintenance_routes
from controlplane.api.routes import schedule as schedule_routes
from controlplane.api.routes import server_group as server_group_routes
from controlplane.api.routes import sla as sla_routes
from controlplane.domain.liveness import LivenessPolicy
from controlplane.metrics import registry as metrics_registry
from controlplane.metrics.api import ApiMetricsMiddleware
from controlplane.reconciler.lab import LabLoop
from controlplane.reconciler.liveness import LivenessLoop
from controlplane.reconciler.pending import PendingLoop
from controlplane.settings import Settings
from controlplane.store import Store
from controlplane.store.liveness import LivenessRepo

API_VERSION = "0.1.0"


def create_app(settings: Settings, store: Store) -> FastAPI:
    """Build the API over ``store``; background loops run while the app is served."""
    pending = PendingLoop(store, settings.pending_retry_interval_s)
    liveness = LivenessLoop(
        LivenessRepo(
            store.db,
            store.clock,
            LivenessPolicy(
                suspect_after_s=settings.host_suspect_after_s,
                down_after_s=settings.host_down_after_s,
            ),
        ),
        settings.liveness_interval_s,
    )
    lab_loop = LabLoop(store, lab_routes.policy_of(settings), settings.lab_loop_interval_s)
    telemetry = metrics_registry.build(store)
    pending.run_once = telemetry.reconcile.counted("pending", pending.run_once)  # type: ignore[method-assign]
    store.instances.on_decision = telemetry.scheduler.observe  # DecisionRecord -> metrics

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.run_loops:
            pending.start()
            liveness.start()
            lab_loop.start()
        try:
            yield
        finally:
            lab_loop.stop()
            liveness.stop()
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
    app.state.liveness = liveness
    app.state.lab_loop = lab_loop
    if settings.admin_token:
        store.users.ensure_admin(settings.admin_token)
    errors.install(app)
    audit.install(app)
    for router in ROUTERS:
        app.include_router(router, prefix="/v1")
    for router in (maintenance_routes.router, sla_routes.router):  # SLA (issue 6)
        app.include_router(router, prefix="/v1")
    for router in (server_group_routes.router, schedule_routes.router):  # scheduler (issue 3)
        app.include_router(router, prefix="/v1")
    app.include_router(lab_routes.router, prefix="/v1")  # Cloud Open Lab (issue 7)
    app.state.metrics = telemetry.registry
    app.state.telemetry = telemetry
    app.add_middleware(ApiMetricsMiddleware, metrics=telemetry.api)  # outermost: times all
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    return app
