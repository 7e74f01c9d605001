"""Capacity, allocation and utilisation per data centre, read from the store at scrape time.

For each resource ``vcpus``, ``ram_bytes`` and ``disk_bytes``:

- ``govcloud_datacentre_capacity_<resource>``: physical size of the enrolled hosts;
- ``govcloud_datacentre_allocatable_<resource>``: what may be claimed,
  ``floor((capacity - reserved) * allocation ratio)`` per host;
- ``govcloud_datacentre_allocated_<resource>``: what instances have claimed;

and ``govcloud_datacentre_utilisation_ratio{datacentre,resource}`` = allocated / allocatable.
Every enrolled host counts, whatever its state (see ``govcloud_fleet_hosts`` for how many are
down or in maintenance).
"""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.core import GaugeMetricFamily, Metric

from controlplane.store import Store
from controlplane.store.stats import StatsRepo

MIB = 1024 * 1024
GIB = 1024 * MIB
#: (metric suffix, resource label, factor from the store's unit)
RESOURCES: tuple[tuple[str, str, int], ...] = (
    ("vcpus", "vcpus", 1),
    ("ram_bytes", "ram", MIB),
    ("disk_bytes", "disk", GIB),
)
KINDS: tuple[tuple[str, str], ...] = (
    ("capacity", "Physical size of the enrolled hosts"),
    ("allocatable", "Claimable after reservations and allocation ratios"),
    ("allocated", "Claimed by instances"),
)


class CapacitySource:
    """Per data centre sums of host sizes, and utilisation ratios."""

    name = "capacity"

    def __init__(self, store: Store) -> None:
        self.stats = StatsRepo(store.db, store.clock)

    def families(self) -> list[Metric]:
        """Sum every host's capacity, allocatable and allocated amounts per data centre."""
        sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for host in self.stats.hosts():
            for kind, sizes in (
                ("capacity", host.capacity),
                ("allocatable", host.usable),
                ("allocated", host.used),
            ):
                acc = sums[(kind, host.datacentre)]
                for i, amount in enumerate(sizes):
                    acc[i] += amount
        datacentres = sorted({dc for _, dc in sums})
        families: list[Metric] = []
        for kind, doc in KINDS:
            for i, (suffix, _label, factor) in enumerate(RESOURCES):
                family = GaugeMetricFamily(
                    f"govcloud_datacentre_{kind}_{suffix}", doc, labels=["datacentre"]
                )
                for dc in datacentres:
                    family.add_metric([dc], sums[(kind, dc)][i] * factor)
                families.append(family)
        ratio = GaugeMetricFamily(
            "govcloud_datacentre_utilisation_ratio",
            "Allocated / allocatable per data centre and resource",
            labels=["datacentre", "resource"],
        )
        for dc in datacentres:
            for i, (_suffix, label, _factor) in enumerate(RESOURCES):
                allocatable = sums[("allocatable", dc)][i]
                if allocatable > 0:
                    ratio.add_metric([dc, label], sums[("allocated", dc)][i] / allocatable)
        families.append(ratio)
        return families
