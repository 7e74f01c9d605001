"""The host agent's Prometheus metrics and its optional ``/metrics`` HTTP endpoint.

Owns :class:`AgentMetrics` (one registry per agent, no process-global state),
:class:`TimedDriver` (wraps any :class:`~agents.drivers.base.HostDriver` and times every
call, so libvirt latency is measured without touching the libvirt adapter) and
:func:`serve` (prometheus-client's HTTP server on the configured address and port).

Metrics (the scrape target identifies the host; no instance ids as labels):

- ``govcloud_agent_libvirt_call_duration_seconds{operation}`` histogram and
  ``govcloud_agent_libvirt_call_errors_total{operation}``: driver operations (``define``,
  ``start``, ``stop``, ``list_domains``, ...), each one or more libvirt calls;
- ``govcloud_agent_domains{state}``: managed (``gc-*``) domains by power state, listed at
  scrape time; ``govcloud_agent_libvirt_up`` is 0 when the listing failed;
- ``govcloud_agent_reconcile_passes_total``; ``govcloud_agent_reconcile_errors_total{stage}``
  (``stage="instance"``: one instance's actions failed; ``"pass"``: a whole pass failed);
- ``govcloud_agent_heartbeats_total`` and ``govcloud_agent_heartbeat_failures_total``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.drivers.base import (
    DomainInfo,
    DriverError,
    HostDriver,
    InstanceMetadata,
    PowerState,
)
from agents.protocol.v1 import Assignment

log = logging.getLogger(__name__)
T = TypeVar("T")
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class AgentMetrics:
    """The agent's instruments, on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.libvirt_duration = Histogram(
            "govcloud_agent_libvirt_call_duration_seconds",
            "Latency of driver operations against libvirt",
            ["operation"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.libvirt_errors = Counter(
            "govcloud_agent_libvirt_call_errors",
            "Driver operations that raised",
            ["operation"],
            registry=self.registry,
        )
        self.passes = Counter(
            "govcloud_agent_reconcile_passes", "Reconcile passes run", registry=self.registry
        )
        self.reconcile_errors = Counter(
            "govcloud_agent_reconcile_errors",
            "Reconcile failures: one instance (stage=instance) or a whole pass (stage=pass)",
            ["stage"],
            registry=self.registry,
        )
        self.heartbeats = Counter(
            "govcloud_agent_heartbeats", "Heartbeats sent", registry=self.registry
        )
        self.heartbeat_failures = Counter(
            "govcloud_agent_heartbeat_failures",
            "Heartbeats that could not be delivered",
            registry=self.registry,
        )
        self._domains: DomainCollector | None = None

    def timed(self, operation: str, call: Callable[[], T]) -> T:
        """Run ``call``, recording its latency (and an error if it raised)."""
        started = time.perf_counter()
        try:
            return call()
        except Exception:
            self.libvirt_errors.labels(operation).inc()
            raise
        finally:
            self.libvirt_duration.labels(operation).observe(time.perf_counter() - started)

    def watch_domains(self, driver: HostDriver) -> None:
        """Report ``driver``'s domains by state at each scrape (once per agent)."""
        if self._domains is None:
            self._domains = DomainCollector(driver)
            self.registry.register(self._domains)


class DomainCollector(Collector):
    """``govcloud_agent_domains{state}`` and ``govcloud_agent_libvirt_up``, listed at scrape."""

    def __init__(self, driver: HostDriver) -> None:
        self.driver = driver

    def collect(self) -> Iterator[Metric]:
        """List the managed domains; a failed listing reports ``libvirt_up`` 0."""
        up = GaugeMetricFamily(
            "govcloud_agent_libvirt_up", "1 if libvirt answered the last scrape's listing"
        )
        try:
            domains = self.driver.list_domains()
        except DriverError as err:
            log.warning("metrics: cannot list domains: %s", err)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        tally = Tally(d.state for d in domains)
        family = GaugeMetricFamily(
            "govcloud_agent_domains", "Managed domains by power state", labels=["state"]
        )
        for state in PowerState:
            family.add_metric([state.value], tally[state])
        yield family
        yield up

    def describe(self) -> Iterator[Metric]:
        """Nothing: describing would call libvirt at registration time."""
        return iter(())


class TimedDriver:
    """A :class:`HostDriver` that times every call of the driver it wraps."""

    def __init__(self, driver: HostDriver, metrics: AgentMetrics) -> None:
        self.inner = driver
        self.metrics = metrics

    @property
    def uri(self) -> str:
        """The wrapped driver's URI."""
        return self.inner.uri

    def list_domains(self) -> list[DomainInfo]:
        """Timed ``list_domains``."""
        return self.metrics.timed("list_domains", self.inner.list_domains)

    def get(self, instance_id: str) -> DomainInfo | None:
        """Timed ``get``."""
        return self.metrics.timed("get", lambda: self.inner.get(instance_id))

    def define(self, assignment: Assignment, *, start: bool) -> DomainInfo:
        """Timed ``define`` (``define_start`` when it also boots the domain)."""
        operation = "define_start" if start else "define"
        return self.metrics.timed(operation, lambda: self.inner.define(assignment, start=start))

    def start(self, instance_id: str) -> DomainInfo:
        """Timed ``start``."""
        return self.metrics.timed("start", lambda: self.inner.start(instance_id))

    def stop(self, instance_id: str, *, force: bool = False) -> DomainInfo:
        """Timed ``stop``."""
        return self.metrics.timed("stop", lambda: self.inner.stop(instance_id, force=force))

    def reboot(self, instance_id: str, *, hard: bool = False) -> DomainInfo:
        """Timed ``reboot``."""
        return self.metrics.timed("reboot", lambda: self.inner.reboot(instance_id, hard=hard))

    def delete(self, instance_id: str) -> bool:
        """Timed ``delete``."""
        return self.metrics.timed("delete", lambda: self.inner.delete(instance_id))

    def suspend(self, instance_id: str) -> DomainInfo:
        """Timed ``suspend``."""
        return self.metrics.timed("suspend", lambda: self.inner.suspend(instance_id))

    def can_migrate_to(self, target_uri: str) -> bool:
        """The wrapped driver's answer (not timed: no hypervisor call)."""
        return self.inner.can_migrate_to(target_uri)

    def migrate(self, instance_id: str, target_uri: str) -> None:
        """Timed ``migrate``."""
        self.metrics.timed("migrate", lambda: self.inner.migrate(instance_id, target_uri))

    def read_metadata(self, instance_id: str) -> InstanceMetadata:
        """Timed ``read_metadata``."""
        return self.metrics.timed("read_metadata", lambda: self.inner.read_metadata(instance_id))

    def write_metadata(self, metadata: InstanceMetadata) -> None:
        """Timed ``write_metadata``."""
        self.metrics.timed("write_metadata", lambda: self.inner.write_metadata(metadata))

    def close(self) -> None:
        """Close the wrapped driver."""
        self.inner.close()


class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`close` stops it."""

    def __init__(self, address: str, port: int, registry: CollectorRegistry) -> None:
        self._server, self._thread = start_http_server(port, addr=address, registry=registry)
        self.address = address
        self.port = int(self._server.server_port)

    def close(self) -> None:
        """Stop serving and wait for the server thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(metrics: AgentMetrics, address: str, port: int) -> MetricsServer:
    """Serve ``metrics`` at ``http://address:port/metrics`` (port 0: any free port)."""
    server = MetricsServer(address, port, metrics.registry)
    log.info("agent metrics at http://%s:%d/metrics", address, server.port)
    return server
