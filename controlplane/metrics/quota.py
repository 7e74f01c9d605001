"""Quota gauges per organisation node and dimension, read from the store at scrape time.

``govcloud_quota_used``, ``_limit``, ``_usage_ratio`` (used / limit, only where a limit is
set), ``_soft_threshold_ratio`` and ``_soft_threshold_reached``, labelled by ``org`` (the
node's code), ``kind`` (root, ministry, agency, project) and ``dimension``.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from controlplane.store import Store

LABELS = ["org", "kind", "dimension"]


class QuotaSource:
    """Quota usage, limits and ratios for every node that has a quota row."""

    name = "quota"

    def __init__(self, store: Store) -> None:
        self.store = store

    def families(self) -> list[Metric]:
        """One read of every quota node."""
        used = GaugeMetricFamily(
            "govcloud_quota_used", "Usage of the node's whole subtree", labels=LABELS
        )
        limit = GaugeMetricFamily(
            "govcloud_quota_limit", "Limit of the node (absent: unlimited)", labels=LABELS
        )
        usage_ratio = GaugeMetricFamily(
            "govcloud_quota_usage_ratio",
            "Usage of the node's subtree divided by its limit (only limited dimensions)",
            labels=LABELS,
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
                amount = node.usage.get(dimension, 0)
                usage_ratio.add_metric(labels, amount / cap if cap > 0 else float(amount > 0))
                reached.add_metric(labels, 1.0 if dimension in node.over_soft_threshold else 0.0)
        return [used, limit, usage_ratio, ratio, reached]
