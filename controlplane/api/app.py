"""``create_app(settings, store)``: the FastAPI application, with no global state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from controlplane.api import audit, errors
from controlplane.api.longpoll import GenerationWatch
from controlplane.api.routes import ROUTERS, dashboard, metrics
from controlplane.api.routes import consolidation as consolidation_routes
from controlplane.api.routes import lab as lab_routes
from controlplane.api.routes import migration as migration_routes
from controlplane.api.routes import schedule as schedule_routes
from controlplane.api.routes import server_group as server_group_routes
from controlplane.metrics import registry as metrics_registry
from controlplane.metrics.api import ApiMetricsMiddleware
from controlplane.reconciler import consolidation as consolidation_loop
from controlplane.reconciler import drain as drain_loop
from controlplane.reconciler import liveness as host_failures
from controlplane.reconciler.lab import LabLoop
from controlplane.reconciler.pending import PendingLoop
from controlplane.settings import Settings
from controlplane.store import Store

API_VERSION = "0.1.0"


def create_app(settings: Settings, store: Store) -> FastAPI:
    """Build the API over ``store``; background loops run while the app is served."""
    pending = PendingLoop(store, settings.pending_retry_interval_s)
    liveness = host_failures.build(settings, store, on_requeue=pending.poke)
    drains = drain_loop.build(settings, store)  # host drain, maintenance, dc evacuate
    consolidation = consolidation_loop.build(settings, store, drains.migrations)
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
            drains.start()
            consolidation.start()
        try:
            yield
        finally:
            consolidation.stop()
            drains.stop()
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
    app.state.longpoll = GenerationWatch(store.hosts.assignment_generations)
    app.state.lab_loop = lab_loop
    app.state.drains = drains
    app.state.consolidation = consolidation
    app.state.org_paths = {}  # organisation code -> path (see api.context.org_path)
    store.users.cache.ttl_s = settings.auth_cache_ttl_s
    if settings.admin_token:
        store.users.ensure_admin(settings.admin_token)
    errors.install(app)
    audit.install(app)
    for router in ROUTERS:
        app.include_router(router, prefix="/v1")
    for router in (server_group_routes.router, schedule_routes.router):  # scheduler (issue 3)
        app.include_router(router, prefix="/v1")
    app.include_router(migration_routes.router, prefix="/v1")  # fleet moves (issue 5)
    app.include_router(consolidation_routes.router, prefix="/v1")  # energy (issue 5)
    app.include_router(lab_routes.router, prefix="/v1")  # Cloud Open Lab (issue 7)
    app.state.metrics = telemetry.registry
    app.state.telemetry = telemetry
    app.add_middleware(ApiMetricsMiddleware, metrics=telemetry.api)  # outermost: times all
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    return app
