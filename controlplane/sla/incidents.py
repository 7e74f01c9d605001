"""Host-failure incidents: downtime of several instances on one host, grouped.

Outages (:class:`controlplane.sla.availability.Outage`) on the same host that overlap, or
follow one another within :data:`GAP`, form one incident: it starts when the first
instance went down and ends when the last one came back; its *time to recover* is that
span. Outages of instances without a host (never placed) are not incidents.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from controlplane.sla.availability import ZERO, Outage

#: Outages on one host this close together belong to the same incident.
GAP = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class HostIncident:
    """Simultaneous downtime on one host."""

    host_id: str
    datacentre: str | None
    start: datetime
    end: datetime
    outages: tuple[Outage, ...]

    @property
    def instance_ids(self) -> list[str]:
        """The instances affected, sorted."""
        return sorted({o.instance_id for o in self.outages})

    @property
    def time_to_recover(self) -> timedelta:
        """From the first instance down to the last one back."""
        return self.end - self.start

    @property
    def downtime(self) -> timedelta:
        """Instance downtime summed over the instances affected."""
        return sum((o.length for o in self.outages), ZERO)

    @property
    def ongoing(self) -> bool:
        """Some instance was still down when the reported period ended."""
        return any(o.open_ended and o.end == self.end for o in self.outages)


def group(outages: Iterable[Outage], gap: timedelta = GAP) -> list[HostIncident]:
    """Incidents, oldest first (ties by host id)."""
    by_host: defaultdict[str, list[Outage]] = defaultdict(list)
    for outage in outages:
        if outage.host_id is not None:
            by_host[outage.host_id].append(outage)
    found: list[HostIncident] = []
    for host_id, items in by_host.items():
        items.sort(key=lambda o: (o.start, o.end, o.instance_id))
        current: list[Outage] = []
        end = items[0].end
        for outage in items:
            if current and outage.start > end + gap:
                found.append(_incident(host_id, current))
                current = []
            end = max(end, outage.end) if current else outage.end
            current.append(outage)
        found.append(_incident(host_id, current))
    return sorted(found, key=lambda i: (i.start, i.host_id))


def _incident(host_id: str, outages: list[Outage]) -> HostIncident:
    return HostIncident(
        host_id=host_id,
        datacentre=outages[0].datacentre,
        start=min(o.start for o in outages),
        end=max(o.end for o in outages),
        outages=tuple(outages),
    )
