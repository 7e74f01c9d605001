"""Instance gauges and failed actions, read from the store at scrape time (fleet-wide).

- ``govcloud_fleet_instances{state,ministry,datacentre}``: live (non-deleted) instances;
  ``datacentre`` is where the instance runs, or the one it asked for while PENDING
  (``""``: any).
- ``govcloud_instances_pending_age_seconds{datacentre}``: age of the oldest PENDING
  request per requested data centre (0 series when nothing is pending).
- ``govcloud_instance_action_failures_total{action}``: user actions (create, start, ...)
  that ended in error because the agent reported a failure; a counter that only grows.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from controlplane.metrics.labels import ministry_of
from controlplane.store import Store
from controlplane.store.stats import StatsRepo


class InstanceSource:
    """Instance counts by state, ministry and data centre; pending age; failed actions."""

    name = "instances"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.stats = StatsRepo(store.db, store.clock)

    def families(self) -> list[Metric]:
        """Build the instance families from three aggregate queries."""
        counts: Counter[tuple[str, str, str]] = Counter()
        for row in self.stats.instance_counts():
            counts[(row.state, ministry_of(row.org_path), row.datacentre)] += row.count
        instances = GaugeMetricFamily(
            "govcloud_fleet_instances",
            "Live instances by state, ministry and data centre",
            labels=["state", "ministry", "datacentre"],
        )
        for labels, count in sorted(counts.items()):
            instances.add_metric(list(labels), count)

        age = GaugeMetricFamily(
            "govcloud_instances_pending_age_seconds",
            "Age of the oldest PENDING instance per requested data centre ('' = any)",
            labels=["datacentre"],
        )
        now = self.store.clock()
        for group in self.stats.pending():
            age.add_metric(
                [group.datacentre], max(0.0, (now - group.oldest_created_at).total_seconds())
            )

        failures = CounterMetricFamily(
            "govcloud_instance_action_failures",
            "Instance actions that ended in error (agent-reported failures)",
            labels=["action"],
        )
        for failed in self.stats.action_failures():
            failures.add_metric([failed.action], failed.count)
        return [instances, age, failures]
