"""Scheduler metrics (per replica) from the store's :class:`DecisionRecord` hook.

- ``govcloud_scheduler_decisions_total{outcome,datacentre}``: decisions by outcome
  (placed, pending, conflict, dry_run) and data centre (placed into, or requested;
  ``any`` when none was requested);
- ``govcloud_scheduler_decision_duration_seconds{outcome}``: decision latency, commit
  included;
- ``govcloud_scheduler_host_rejections_total{check}``: hosts rejected, per check
  (``host_state``, ``capacity``, ...): why requests do not fit;
- ``govcloud_scheduler_instances_total{outcome}``: instances decided (a ``--count``
  decision counts each).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from controlplane.scheduler.record import DecisionRecord

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class SchedulerMetrics:
    """Counters and a histogram fed by :meth:`observe` (a ``DecisionHook``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "govcloud_scheduler_decisions",
            "Scheduling decisions by outcome and data centre",
            ["outcome", "datacentre"],
            registry=registry,
        )
        self.instances = Counter(
            "govcloud_scheduler_instances",
            "Instances decided, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "govcloud_scheduler_decision_duration_seconds",
            "Time to decide and commit one placement",
            ["outcome"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.rejections = Counter(
            "govcloud_scheduler_host_rejections",
            "Hosts rejected by each feasibility check",
            ["check"],
            registry=registry,
        )

    def observe(self, record: DecisionRecord) -> None:
        """Record one decision (safe to call from any thread)."""
        self.decisions.labels(record.outcome, record.datacentre or "any").inc()
        self.instances.labels(record.outcome).inc(max(record.count, 0))
        self.duration.labels(record.outcome).observe(max(record.seconds, 0.0))
        for check, hosts in record.rejected_by.items():
            if hosts > 0:
                self.rejections.labels(check).inc(hosts)
