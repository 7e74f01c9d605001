"""Quota gauges per organisation node and dimension, read from the store at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controlplane.store import Store

LABELS = ["org", "kind", "dimension"]


class QuotaCollector(Collector):
    """``govcloud_quota_used``, ``_limit``, ``_soft_threshold_ratio``, ``_soft_reached``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        used = GaugeMetricFamily(
            "govcloud_quota_used", "Usage of the node's whole subtree", labels=LABELS
        )
        limit = GaugeMetricFamily(
            "govcloud_quota_limit", "Limit of the node (absent: unlimited)", labels=LABELS
        )
        ratio = GaugeMetricFamily(
            "govcloud_quota_soft_threshold_ratio",
            "Fraction of the limit that warns",
            labels=["org", "kind"],
        )
        reached = GaugeMetricFamily(
            "govcloud_quota_soft_threshold_reached",
            "1 while usage is at or above the soft threshold of the limit",
            labels=LABELS,
        )
        for node in self.store.quotas.nodes():
            ratio.add_metric([node.org, node.kind], node.soft_threshold)
            for dimension, amount in node.usage.items():
                used.add_metric([node.org, node.kind, dimension], amount)
            for dimension, cap in node.limits.items():
                if cap is None:
                    continue
                labels = [node.org, node.kind, dimension]
                limit.add_metric(labels, cap)
                reached.add_metric(labels, 1.0 if dimension in node.over_soft_threshold else 0.0)
        yield from (used, limit, ratio, reached)
