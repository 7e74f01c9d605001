"""Host gauges, read from the store at scrape time (fleet-wide).

- ``govcloud_fleet_hosts{datacentre,state}``: enrolled hosts per state (active, maintenance,
  disabled, down). Every state is reported for every data centre with hosts, 0 included,
  so ``govcloud_fleet_hosts{state="down"} > 0`` has a series to compare.
- ``govcloud_host_heartbeat_age_seconds{host,datacentre,state}``: seconds since the host's
  agent last heartbeated (since registration if it never did). One series per host: hosts
  are infrastructure, bounded by the fleet, not by tenants' activity.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client.core import GaugeMetricFamily, Metric

from controlplane.domain.host import HostState
from controlplane.store import Store
from controlplane.store.stats import StatsRepo


class HostSource:
    """Host counts by state and heartbeat ages."""

    name = "hosts"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.stats = StatsRepo(store.db, store.clock)

    def families(self) -> list[Metric]:
        """Build the host families from one read of the hosts table."""
        hosts = self.stats.hosts()
        now = self.store.clock()
        by_state: Counter[tuple[str, str]] = Counter((h.datacentre, h.state) for h in hosts)
        count = GaugeMetricFamily(
            "govcloud_fleet_hosts",
            "Enrolled hosts by data centre and state",
            labels=["datacentre", "state"],
        )
        for dc in sorted({h.datacentre for h in hosts}):
            for state in HostState:
                count.add_metric([dc, state.value], by_state[(dc, state.value)])
        age = GaugeMetricFamily(
            "govcloud_host_heartbeat_age_seconds",
            "Seconds since the host's last heartbeat (since registration if none)",
            labels=["host", "datacentre", "state"],
        )
        for h in hosts:
            age.add_metric(
                [h.name, h.datacentre, h.state], max(0.0, (now - h.last_seen).total_seconds())
            )
        return [count, age]
