"""``govcloud_provisioning_latency_seconds{ministry,datacentre}``: API accept -> first RUNNING.

A histogram computed in the database at scrape time from each instance's ``created_at``
(the API accepted the request) and ``launched_at`` (the agent first reported it RUNNING).
Deleted instances keep both times, so the buckets only grow, like any Prometheus
histogram's, and every replica reports the same values (aggregate with ``max``, not
``sum``, across replicas).
"""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.core import HistogramMetricFamily, Metric

from controlplane.metrics.labels import ministry_of
from controlplane.store import Store
from controlplane.store.stats import StatsRepo

#: Bucket bounds in seconds: around the usual SLA targets (p95 under 2, 5, 10 minutes).
BUCKETS: tuple[float, ...] = (5, 10, 15, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1800, 3600)


class ProvisioningSource:
    """The provisioning latency histogram, per ministry and data centre."""

    name = "provisioning"

    def __init__(self, store: Store, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.stats = StatsRepo(store.db, store.clock)
        self.buckets = buckets

    def families(self) -> list[Metric]:
        """Fold per-project rows into per-ministry buckets."""
        cumulative: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(self.buckets))
        totals: dict[tuple[str, str], tuple[int, float]] = defaultdict(lambda: (0, 0.0))
        for row in self.stats.provisioning_latency(self.buckets):
            key = (ministry_of(row.org_path), row.datacentre)
            acc = cumulative[key]
            for i, n in enumerate(row.cumulative):
                acc[i] += n
            count, total = totals[key]
            totals[key] = (count + row.count, total + row.total_seconds)
        family = HistogramMetricFamily(
            "govcloud_provisioning_latency_seconds",
            "Time from API accept to the first RUNNING report, per ministry and data centre",
            labels=["ministry", "datacentre"],
        )
        for key in sorted(cumulative):
            count, total = totals[key]
            buckets = [
                (_le(b), float(n)) for b, n in zip(self.buckets, cumulative[key], strict=True)
            ]
            buckets.append(("+Inf", float(count)))
            family.add_metric(list(key), buckets, total)
        return [family]


def _le(bound: float) -> str:
    return f"{float(bound)}"
