"""Monthly availability of one instance, in the style of public cloud compute SLAs.

For a period ``[lo, hi)`` (a calendar month in UTC, or up to *now* while it runs):

- **eligible** time is when the instance existed, had been launched (reached ``RUNNING``)
  since the tenant last asked for it to run, the tenant wanted it running
  (``desired_power == running``) and it was not being deleted;
- **excluded** time is eligible time inside an announced maintenance window covering the
  instance's host or data centre at that moment: it counts neither as up nor as down;
- **downtime** is the rest of the eligible time spent in any state but ``RUNNING`` or
  ``MIGRATING`` (``ERROR``, ``UNKNOWN`` on a DOWN host, ``BUILDING`` while rebuilt after a
  reboot or an evacuation, ``STOPPED`` although the tenant wanted it running, ...).

So a tenant's stop (and the time a start takes until the VM runs again) never counts, a
host failure while the tenant had stopped the VM never counts, and availability is
``1 - downtime / (eligible - excluded)`` over what remains. Everything is exact
``timedelta`` arithmetic; rounding happens only in reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

from controlplane.domain.maintenance import MaintenanceWindow
from controlplane.sla.history import GONE, UP, WANTED, InstanceHistory

ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class Segment:
    """``[start, end)`` (``end`` None: still so) with what held during it."""

    start: datetime
    end: datetime | None
    state: str
    desired_power: str
    host_id: str | None
    datacentre: str | None
    #: The instance had reached RUNNING since the tenant last asked for it to run.
    launched: bool

    @property
    def eligible(self) -> bool:
        """Whether this time counts for the SLA at all."""
        return self.launched and self.desired_power == WANTED and self.state not in GONE


@dataclass(frozen=True, slots=True)
class Outage:
    """A stretch of downtime of one instance on one host."""

    instance_id: str
    start: datetime
    end: datetime
    state: str
    host_id: str | None
    datacentre: str | None
    #: Still down when the reported period ends.
    open_ended: bool = False

    @property
    def length(self) -> timedelta:
        """How long it lasted inside the period."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Accounting:
    """One instance's figures for one period."""

    instance_id: str
    eligible: timedelta = ZERO
    downtime: timedelta = ZERO
    excluded: timedelta = ZERO
    outages: tuple[Outage, ...] = field(default=())

    @property
    def counted(self) -> timedelta:
        """Eligible time minus excluded time: the availability denominator."""
        return self.eligible - self.excluded

    @property
    def availability(self) -> Fraction | None:
        """``1 - downtime / counted``; None when nothing counted (no data, not 100 %)."""
        return availability(self.counted, self.downtime)


def availability(counted: timedelta, downtime: timedelta) -> Fraction | None:
    """``1 - downtime / counted`` exactly, None when ``counted`` is zero."""
    if counted <= ZERO:
        return None
    return 1 - Fraction(downtime // timedelta(microseconds=1), counted // timedelta(microseconds=1))


def segments(history: InstanceHistory) -> list[Segment]:
    """The instance's timeline as consecutive segments, one per event."""
    out: list[Segment] = []
    launched = False
    events = history.events
    for index, ev in enumerate(events):
        if ev.desired_power != WANTED:
            launched = False  # the tenant stopped it: eligible again once it runs again
        elif ev.state in UP:
            launched = True
        end = events[index + 1].at if index + 1 < len(events) else None
        if end is not None and end <= ev.at:
            continue  # superseded at the same instant
        out.append(
            Segment(ev.at, end, ev.state, ev.desired_power, ev.host_id, ev.datacentre, launched)
        )
    return out


def _union(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _minus(
    start: datetime, end: datetime, holes: Sequence[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` without the (merged, sorted) ``holes``."""
    pieces = []
    cursor = start
    for h_start, h_end in holes:
        if h_start > cursor:
            pieces.append((cursor, min(h_start, end)))
        cursor = max(cursor, h_end)
        if cursor >= end:
            break
    if cursor < end:
        pieces.append((cursor, end))
    return [(a, b) for a, b in pieces if b > a]


def account(
    history: InstanceHistory,
    lo: datetime,
    hi: datetime,
    windows: Sequence[MaintenanceWindow] = (),
) -> Accounting:
    """The instance's eligible, excluded and down time in ``[lo, hi)``."""
    eligible = downtime = excluded = ZERO
    outages: list[Outage] = []
    for seg in segments(history):
        start = max(seg.start, lo)
        end = hi if seg.end is None else min(seg.end, hi)
        if end <= start or not seg.eligible:
            continue
        holes = _union(
            (max(w.starts_at, start), min(w.ends_at, end))
            for w in windows
            if w.covers(seg.host_id, seg.datacentre) and w.starts_at < end and w.ends_at > start
        )
        eligible += end - start
        excluded += sum((b - a for a, b in holes), ZERO)
        if seg.state in UP:
            continue
        for a, b in _minus(start, end, holes):
            downtime += b - a
            clipped = b == hi and (seg.end is None or seg.end > hi)
            previous = outages[-1] if outages else None
            if previous is not None and previous.end == a and previous.host_id == seg.host_id:
                outages[-1] = Outage(  # e.g. ERROR then UNKNOWN: one outage
                    history.instance_id, previous.start, b, previous.state, seg.host_id,
                    seg.datacentre, clipped,
                )  # fmt: skip
            else:
                outages.append(
                    Outage(history.instance_id, a, b, seg.state, seg.host_id, seg.datacentre,
                           clipped)
                )  # fmt: skip
    return Accounting(history.instance_id, eligible, downtime, excluded, tuple(outages))
