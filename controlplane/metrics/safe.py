"""Collectors that read the store at scrape time, guarded so they never fail a scrape.

Each :class:`StoreSource` builds its metric families from the database. :class:`GuardedCollector`
runs every source; a source that raises (broken query, database outage) is left out and
``govcloud_metrics_collector_up{collector}`` reports 0 for it, so the failure is an
alertable series instead of a failed ``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


class StoreSource(Protocol):
    """Metric families computed from the store."""

    #: Label value of ``govcloud_metrics_collector_up``.
    name: str

    def families(self) -> list[Metric]:
        """Every family of this source, fully built (the store is read here)."""
        ...


class GuardedCollector(Collector):
    """Runs every source at scrape time; a failing source reports ``collector_up = 0``."""

    def __init__(self, sources: Sequence[StoreSource]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        """The families of every source that could be read, then the ``up`` gauge."""
        up = GaugeMetricFamily(
            "govcloud_metrics_collector_up",
            "1 if the collector could read the store at this scrape, else 0",
            labels=["collector"],
        )
        for source in self.sources:
            try:
                built = source.families()
            except Exception:  # one failed query must not fail the whole scrape
                log.exception("metrics collector %s failed", source.name)
                up.add_metric([source.name], 0.0)
                continue
            up.add_metric([source.name], 1.0)
            yield from built
        yield up

    def describe(self) -> Iterator[Metric]:
        """Nothing: describing would run the queries at registration time."""
        return iter(())
