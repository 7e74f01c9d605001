"""Assembles one app's metrics: a fresh registry, the per-replica instruments and the
store-reading collectors (no process-global registry, so many apps fit in one process)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from controlplane.metrics.api import ApiMetrics
from controlplane.metrics.capacity import CapacitySource
from controlplane.metrics.hosts import HostSource
from controlplane.metrics.instances import InstanceSource
from controlplane.metrics.provisioning import ProvisioningSource
from controlplane.metrics.quota import QuotaSource
from controlplane.metrics.reconcile import ReconcileMetrics
from controlplane.metrics.safe import GuardedCollector
from controlplane.metrics.scheduler import SchedulerMetrics
from controlplane.store import Store


@dataclass(frozen=True)
class ControlPlaneMetrics:
    """Everything ``/metrics`` renders for one control-plane replica."""

    registry: CollectorRegistry
    api: ApiMetrics
    scheduler: SchedulerMetrics
    reconcile: ReconcileMetrics


def build(store: Store) -> ControlPlaneMetrics:
    """A registry with every govcloud instrument and collector over ``store``."""
    registry = CollectorRegistry()
    registry.register(
        GuardedCollector(
            [
                InstanceSource(store),
                ProvisioningSource(store),
                HostSource(store),
                CapacitySource(store),
                QuotaSource(store),
            ]
        )
    )
    return ControlPlaneMetrics(
        registry=registry,
        api=ApiMetrics(registry),
        scheduler=SchedulerMetrics(registry),
        reconcile=ReconcileMetrics(registry),
    )
